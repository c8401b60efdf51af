with source as (
    select * from {{ source('govflow', 'dim_sku') }}
),

final as (
    select
        sku_id,
        product_id,
        product_name,
        sku,
        price,
        sale_price,
        effective_price,
        inventory_level,
        is_purchasable,
        is_in_stock,
        _epoch
    from source
)

select * from final
