{{ config(materialized='ephemeral') }}
-- Purchases only; not stored, inlined into the models that read it.
select user_id, cohort, revenue, ts
from {{ ref('stg_events') }}
where event = 'purchase'
