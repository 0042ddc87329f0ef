{#- The completed MQTT jobs that silver_print_jobs has emitted as prints of their own because no
    Bambuddy run was paired with them archive_grace_minutes after their end (Bambuddy may lag,
    stay `printing`, or never archive). Insert-only: once a job is here its print keeps the MQTT
    print_id and batch for good, also when its run appears later (then the run is linked to it). A
    job paired in the same build as it entered bronze is never here (a backfill keeps the original
    sidecar's bambuddy-<id> batches). With Bambuddy enabled a job is emitted only when Bambuddy
    shows it watched the printer since the job started (an archive created for that printer). -#}
{#- full_refresh=false: this is recorded history; a --full-refresh would forget it (and move print_ids). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    full_refresh=false,
    post_hook="create unique index if not exists ux_silver_mqtt_emissions on silver_mqtt_emissions (job_ref)"
) }}
{% set grace_days = var('archive_grace_minutes') | float / 1440.0 %}
{% set bambuddy = var('bambuddy_enabled') | string | lower in ('true', '1', 'yes') %}

with bronze_jobs as not materialized (

    select * from {{ ref('bronze_printer_jobs') }}

),

job_matches as not materialized (

    select * from {{ ref('silver_job_matches') }}

),

bronze_versions as not materialized (

    select * from {{ ref('bronze_archive_versions') }}

)

select
    cast(j.printer_serial || ':' || j.job_key as text)   as job_ref,
    cast(j.printer_serial as text)                       as printer_serial,
    cast(j.job_key as text)                              as job_key,
    {{ now_utc() }}                                       as emitted_at
from bronze_jobs as j
where j.status = 'completed'
  and julianday('now') > julianday(j.ended_at) + {{ grace_days }}
  and not exists (select 1 from job_matches as m where m.job_ref = j.printer_serial || ':' || j.job_key)
{% if bambuddy %}
  -- Bambuddy watched this printer while or after the print ran (it created an archive for the
  -- printer since the print started) and still has no run for it: Bambuddy lagged or missed it.
  -- A printer Bambuddy shows no sign of watching is not ours to stock from the logger.
  and exists (select 1 from bronze_versions as v
              where v.printer_serial = j.printer_serial
                and julianday(v.created_at) >= julianday(j.started_at) - 120 / 86400.0)
{% endif %}
{% if is_incremental() %}
  and not exists (select 1 from {{ this }} as e where e.job_ref = j.printer_serial || ':' || j.job_key)
{% endif %}
