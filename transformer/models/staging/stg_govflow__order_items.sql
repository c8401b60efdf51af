with source as (
    select * from {{ source('govflow', 'fct_order_item') }}
),

{#- Whether a line counts as a sale is its order's: paid and not fully
    refunded (govflow's `fct_order.is_revenue`, docs/metrics.md). -#}
orders as (
    select order_id, is_revenue from {{ source('govflow', 'fct_order') }}
),

final as (
    select
        source.order_item_id,
        source.order_id,
        source.customer_id,
        source.product_id,
        source.sku_id,
        source.sku,
        source.quantity,
        source.unit_price,
        source.line_total,
        source.status_id,
        source.status as order_status,
        coalesce(orders.is_revenue, false) as is_revenue,
        source.ordered_at,
        source._epoch
    from source
    left join orders on source.order_id = orders.order_id
)

select * from final
