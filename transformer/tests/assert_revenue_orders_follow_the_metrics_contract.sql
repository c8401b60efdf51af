{#- Orders whose revenue flags break docs/metrics.md: a revenue order is live
    (fct_order has live orders only), in a paid status or Refunded (4), and not
    fully refunded (a positive refunded_amount reaching the total, or Refunded
    without an amount); its net revenue is total_inc_tax - refunded_amount, 0
    for other orders. -#}
select order_id, status_id, total_inc_tax, refunded_amount, is_revenue, net_revenue
from {{ ref('stg_govflow__orders') }}
where is_revenue <> (
        ({{ govflow.is_paid_status('status_id') }} or status_id = 4)
        and not (
            (refunded_amount > 0 and refunded_amount >= total_inc_tax)
            or (status_id = 4 and refunded_amount <= 0)
        )
    )
   or net_revenue <> case
        when is_revenue then greatest(total_inc_tax - refunded_amount, 0)
        else 0
    end
