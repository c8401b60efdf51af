{#-
  Lines of completed orders (Shipped or Completed) with their order and customer.

  Incremental on govflow's commit epoch `_epoch`, never on a source timestamp:
  a run re-derives every order that changed since the newest `_epoch` already in
  the mart (its order, one of its lines or its customer was committed later), and
  replaces that order's rows (delete+insert by order_id). Before that, the
  pre-hook deletes the rows of orders that are no longer complete or no longer
  live, and of customers that are gone; orders removed that way are re-derived
  because they are missing from the mart. The result equals a full rebuild.
-#}
{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='order_id',
    on_schema_change='fail',
    pre_hook="{% if is_incremental() %}
      delete from {{ this }}
      where order_id not in (select order_id from {{ ref('stg_govflow__orders') }} where is_complete)
         or (customer_email is not null
             and customer_id not in (select customer_id from {{ ref('stg_govflow__customers') }}))
    {% endif %}"
  )
}}

with orders as (
    select * from {{ ref('stg_govflow__orders') }}
    where is_complete
),

order_items as (
    select * from {{ ref('stg_govflow__order_items') }}
),

customers as (
    select * from {{ ref('stg_govflow__customers') }}
),

{% if is_incremental() %}
watermark as (
    select coalesce(max(_epoch), -1) as epoch from {{ this }}
),

changed_orders as (
    select order_id from orders where _epoch > (select epoch from watermark)
    union
    select order_id from order_items where _epoch > (select epoch from watermark)
    union
    select orders.order_id
    from orders
    inner join customers on orders.customer_id = customers.customer_id
    where customers._epoch > (select epoch from watermark)
    union
    select order_id from orders
    where order_id not in (select order_id from {{ this }})
),
{% endif %}

final as (
    select
        order_items.order_item_id,
        orders.order_id,
        orders.ordered_at,
        orders.order_status,
        orders.total_inc_tax as order_total_inc_tax,
        orders.item_count as order_item_count,
        orders.customer_id,
        customers.email as customer_email,
        customers.full_name as customer_full_name,
        customers.customer_group_id,
        order_items.product_id,
        order_items.sku_id,
        order_items.sku,
        order_items.quantity,
        order_items.unit_price,
        order_items.line_total,
        greatest(orders._epoch, order_items._epoch, coalesce(customers._epoch, 0)) as _epoch
    from orders
    inner join order_items on orders.order_id = order_items.order_id
    left join customers on orders.customer_id = customers.customer_id
    {% if is_incremental() %}
    where orders.order_id in (select order_id from changed_orders)
    {% endif %}
)

select * from final
