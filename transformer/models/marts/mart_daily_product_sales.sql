{#-
  Sales per product and calendar day (in the `sales_timezone` var, UTC by
  default): lines of revenue orders (paid, not fully refunded: the rule of
  govflow's fct_order.is_revenue and dim_customer, docs/metrics.md), gross of
  partial refunds, which BigCommerce does not itemise. Rebuilt in full each run.
-#}
with order_items as (
    select * from {{ ref('stg_govflow__order_items') }}
    where is_revenue
),

products as (
    select * from {{ ref('stg_govflow__products') }}
),

daily as (
    select
        {{ local_date('ordered_at') }} as sales_date,
        product_id,
        count(distinct order_id) as order_count,
        count(distinct customer_id) as customer_count,
        count(*) as line_count,
        sum(quantity) as quantity_sold,
        sum(line_total) as revenue,
        max(_epoch) as _epoch
    from order_items
    group by 1, 2
),

final as (
    select
        {{ dbt.concat(["cast(daily.sales_date as " ~ dbt.type_string() ~ ")", "':'", "cast(daily.product_id as " ~ dbt.type_string() ~ ")"]) }} as daily_product_sales_id,
        daily.sales_date,
        daily.product_id,
        products.product_name,
        daily.order_count,
        daily.customer_count,
        daily.line_count,
        daily.quantity_sold,
        daily.revenue,
        daily._epoch
    from daily
    left join products on daily.product_id = products.product_id
)

select * from final
