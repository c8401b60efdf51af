{#- SKUs and products whose prices break docs/metrics.md: "no sale" is null
    (never 0), and a SKU's effective price is its sale price when there is
    one, else its price. -#}
select 'sku' as kind, sku_id as id, price, sale_price, effective_price
from {{ ref('stg_govflow__skus') }}
where sale_price <= 0
   or effective_price <> coalesce(sale_price, price)
union all
select 'product' as kind, product_id as id, price, sale_price, null as effective_price
from {{ ref('stg_govflow__products') }}
where sale_price <= 0
