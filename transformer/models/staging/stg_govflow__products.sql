with source as (
    select * from {{ source('govflow', 'dim_product') }}
),

final as (
    select
        product_id,
        name as product_name,
        brand_id,
        sku,
        price,
        sale_price,
        is_visible,
        availability,
        inventory_tracking,
        variant_count,
        total_inventory,
        _epoch
    from source
)

select * from final
