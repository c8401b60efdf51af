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

{#- Statuses whose orders count as sales: all but Incomplete (0), Cancelled (5)
    and Declined (6), as in govflow's dim_customer. -#}
{% macro is_revenue_status(status_id) -%}
  {{ status_id }} not in (0, 5, 6)
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
