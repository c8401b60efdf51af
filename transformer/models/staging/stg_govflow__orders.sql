with source as (
    select * from {{ source('govflow', 'fct_order') }}
),

final as (
    select
        order_id,
        customer_id,
        status_id,
        status as order_status,
        is_complete,
        {{ is_revenue_status('status_id') }} as is_revenue,
        subtotal_ex_tax,
        total_ex_tax,
        total_inc_tax,
        item_count,
        quantity,
        ordered_at,
        modified_at,
        _epoch
    from source
)

select * from final
