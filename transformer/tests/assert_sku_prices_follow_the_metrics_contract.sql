{#- SKUs whose prices break docs/metrics.md: "no sale" is null (never 0), and
    the effective price is the sale price when there is one, else the price. -#}
select sku_id, price, sale_price, effective_price
from {{ ref('stg_govflow__skus') }}
where sale_price <= 0
   or effective_price <> coalesce(sale_price, price)
