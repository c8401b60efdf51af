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
        is_revenue,
        subtotal_ex_tax,
        total_ex_tax,
        total_inc_tax,
        refunded_amount,
        net_revenue,
        item_count,
        quantity,
        ordered_at,
        modified_at,
        _epoch
    from source
)

select * from final
