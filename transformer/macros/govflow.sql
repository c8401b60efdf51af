{#- The calendar day of a UTC timestamp in the `sales_timezone` var. -#}
{% macro local_date(column) -%}
  {{ return(adapter.dispatch('local_date', 'govflow')(column)) }}
{%- endmacro %}

{% macro default__local_date(column) -%}
  date({{ column }}, '{{ var("sales_timezone") }}')
{%- endmacro %}

{% macro duckdb__local_date(column) -%}
  cast(timezone('{{ var("sales_timezone") }}', {{ column }}) as date)
{%- endmacro %}

{#- Paid statuses, the revenue statuses of docs/metrics.md: Shipped (2),
    Partially Shipped (3), Awaiting Pickup (8), Awaiting Shipment (9),
    Completed (10), Awaiting Fulfillment (11), Partially Refunded (14).
    Revenue orders are these and Refunded (4) ones, less fully refunded ones:
    marts read `fct_order.is_revenue`; this list serves dbt tests and ad-hoc
    queries. -#}
{% macro is_paid_status(status_id) -%}
  {{ status_id }} in (2, 3, 8, 9, 10, 11, 14)
{%- endmacro %}

{#- The type of money columns: govflow writes DECIMAL(18, 4); BigQuery calls it
    NUMERIC and refuses parameterized types in CAST. -#}
{% macro money_type() -%}
  {{ return(adapter.dispatch('money_type', 'govflow')()) }}
{%- endmacro %}

{% macro default__money_type() -%}
  decimal(18, 4)
{%- endmacro %}

{% macro bigquery__money_type() -%}
  numeric
{%- endmacro %}
