{#-
  One row per customer: govflow's lifetime aggregates (revenue orders: paid,
  not fully refunded; lifetime_revenue net of refunds, docs/metrics.md), the
  gross revenue and refunds behind them, and what a sales team segments on:
  average order value, items and distinct products bought, and a value
  segment. Rebuilt in full each run.
-#}
with customers as (
    select * from {{ ref('stg_govflow__customers') }}
),

billed as (
    select
        customer_id,
        sum(total_inc_tax) as gross_revenue,
        sum(refunded_amount) as refunded_amount,
        max(_epoch) as _epoch
    from {{ ref('stg_govflow__orders') }}
    where is_revenue and customer_id is not null
    group by customer_id
),

purchases as (
    select
        customer_id,
        sum(quantity) as items_purchased,
        count(distinct product_id) as distinct_products_purchased,
        max(_epoch) as _epoch
    from {{ ref('stg_govflow__order_items') }}
    where is_revenue and customer_id is not null
    group by customer_id
),

final as (
    select
        customers.customer_id,
        customers.email,
        customers.full_name,
        customers.customer_group_id,
        customers.created_at,
        customers.first_order_at,
        customers.last_order_at,
        customers.order_count,
        customers.lifetime_revenue,
        coalesce(billed.gross_revenue, 0) as gross_revenue,
        coalesce(billed.refunded_amount, 0) as refunded_amount,
        case
            when customers.order_count > 0
            then cast(customers.lifetime_revenue / customers.order_count as {{ govflow.money_type() }})
        end as average_order_value,
        coalesce(purchases.items_purchased, 0) as items_purchased,
        coalesce(purchases.distinct_products_purchased, 0) as distinct_products_purchased,
        case
            when customers.lifetime_revenue >= 1000 then 'high'
            when customers.lifetime_revenue >= 250 then 'medium'
            when customers.lifetime_revenue > 0 then 'low'
            else 'none'
        end as value_segment,
        greatest(customers._epoch, coalesce(purchases._epoch, 0), coalesce(billed._epoch, 0)) as _epoch
    from customers
    left join purchases on customers.customer_id = purchases.customer_id
    left join billed on customers.customer_id = billed.customer_id
)

select * from final
