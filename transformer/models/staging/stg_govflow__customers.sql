with source as (
    select * from {{ source('govflow', 'dim_customer') }}
),

final as (
    select
        customer_id,
        email,
        full_name,
        customer_group_id,
        created_at,
        order_count,
        lifetime_revenue,
        first_order_at,
        last_order_at,
        _epoch
    from source
)

select * from final
