with source as (
    select * from {{ source('govflow', 'fct_order_item') }}
),

final as (
    select
        order_item_id,
        order_id,
        customer_id,
        product_id,
        sku_id,
        sku,
        quantity,
        unit_price,
        line_total,
        status_id,
        status as order_status,
        {{ is_revenue_status('status_id') }} as is_revenue,
        ordered_at,
        _epoch
    from source
)

select * from final
