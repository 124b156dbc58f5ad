{{ config(materialized='table') }}
-- Revenue to date per acquisition cohort, over every date.
select
    cohort,
    count(*) as purchases,
    count(distinct user_id) as buyers,
    sum(revenue) as revenue,
    min(ts) as first_purchase_at,
    max(ts) as last_purchase_at
from {{ ref('int_purchases') }}
group by cohort
