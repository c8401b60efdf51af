{#- Customers whose net lifetime revenue is not their revenue orders' gross
    revenue minus their refunds (docs/metrics.md). -#}
select customer_id, lifetime_revenue, gross_revenue, refunded_amount
from {{ ref('mart_customer_lifetime_value') }}
where lifetime_revenue <> gross_revenue - refunded_amount
