"""`pgfeed schedule`: pgfeed's periodic work as pg_cron jobs.

Two jobs per database, named after it so several pgfeed databases on one server
keep their own:

- ``pgfeed_maintenance:<database>`` runs ``SELECT feed.run_maintenance()`` every
  10 minutes (the heartbeat and every periodic chore);
- ``pgfeed_recommendations:<database>`` runs ``SELECT feed.build_recommendations()``
  nightly.

pg_cron keeps its job table in one database per server (the setting
``cron.database_name``). When pgfeed lives in that database the jobs are created
with ``cron.schedule``; otherwise this connects to the cron database (same server,
same credentials) and uses ``cron.schedule_in_database``. Installing again updates
the jobs in place (pg_cron upserts by job name), so it is idempotent.

Where pg_cron is not loaded (``shared_preload_libraries``) or not installed, the
commands fail with a message saying what to do, and run the work from cron
instead: ``pgfeed maintenance`` every 10 minutes, ``pgfeed recs build`` nightly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

MAINTENANCE = "maintenance"
RECOMMENDATIONS = "recommendations"
DEFAULT_MAINTENANCE_SCHEDULE = "*/10 * * * *"
DEFAULT_RECOMMENDATIONS_SCHEDULE = "30 3 * * *"
COMMANDS = {
    MAINTENANCE: "SELECT feed.run_maintenance()",
    RECOMMENDATIONS: "SELECT feed.build_recommendations()",
}


# exit codes of the pgfeed command line: 1 a command failed, 4 no pgfeed schema
EXIT_FAILURE = 1
EXIT_NOT_MIGRATED = 4


class ScheduleError(click.ClickException):
    """pg_cron is missing, not loaded, or pgfeed is not installed where the jobs would run."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.exit_code = exit_code

    def format_message(self) -> str:
        return self.message

    def show(self, file=None) -> None:
        click.echo(f"pgfeed: error: {self.format_message()}", err=True, file=file)


@dataclass
class Job:
    jobid: int
    jobname: str
    schedule: str
    command: str
    database: str
    active: bool
    last_status: str | None = None
    last_run: str | None = None


def job_name(kind: str, database: str) -> str:
    return f"pgfeed_{kind}:{database}"


# ---------------------------------------------------------------------------
# where pg_cron is


@dataclass
class CronPlace:
    target_database: str  # where pgfeed lives and the jobs run
    cron_database: str    # where pg_cron keeps its jobs (cron.database_name)
    cron_dsn: str


def _database_of(conn: psycopg.Connection) -> str:
    return conn.execute("SELECT current_database()").fetchone()[0]


def locate_cron(dsn: str, create_extension: bool = True) -> CronPlace:
    """Where pg_cron's jobs live for the pgfeed database named by ``dsn``.

    Raises ScheduleError with what to do when pg_cron cannot be used."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        target = _database_of(conn)
        if conn.execute("SELECT to_regprocedure('feed.run_maintenance()') IS NULL").fetchone()[0]:
            raise ScheduleError(f"database {target!r} has no pgfeed schema; run `pgfeed migrate` first",
                                EXIT_NOT_MIGRATED)
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron'").fetchone()
        cron_database = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0]
        preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
    if not available:
        raise ScheduleError(
            "pg_cron is not installed on this server (no pg_cron extension available); install it "
            "(e.g. Debian's postgresql-NN-cron package) or run `pgfeed maintenance` every 10 minutes and "
            "`pgfeed recs build` nightly from cron")
    loaded = "pg_cron" in [p.strip() for p in preload.split(",")]
    if not loaded or not cron_database:
        raise ScheduleError(
            "pg_cron is installed but not loaded: add it to shared_preload_libraries "
            "(shared_preload_libraries = 'pg_cron', and cron.database_name = the database that keeps the "
            "jobs, default 'postgres') and restart the server")
    params = conninfo_to_dict(dsn)
    params["dbname"] = cron_database
    cron_dsn = make_conninfo(**params)
    with psycopg.connect(cron_dsn, autocommit=True) as conn:
        has_extension = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
        if not has_extension:
            if not create_extension:
                raise ScheduleError(f"pg_cron is loaded but its extension is not created in database "
                                    f"{cron_database!r}: CREATE EXTENSION pg_cron there")
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            except psycopg.Error as exc:
                raise ScheduleError(f"could not create the pg_cron extension in database {cron_database!r} "
                                    f"({exc.diag.message_primary or exc}); a superuser must run "
                                    f"CREATE EXTENSION pg_cron there") from exc
    return CronPlace(target, cron_database, cron_dsn)


# ---------------------------------------------------------------------------
# the operations


def install_jobs(dsn: str, maintenance: str = DEFAULT_MAINTENANCE_SCHEDULE,
                 recommendations: str = DEFAULT_RECOMMENDATIONS_SCHEDULE) -> list[Job]:
    """Create (or update in place) the two jobs; returns them."""
    place = locate_cron(dsn)
    schedules = {MAINTENANCE: maintenance, RECOMMENDATIONS: recommendations}
    with psycopg.connect(place.cron_dsn, autocommit=True) as conn:
        in_database = conn.execute(
            "SELECT to_regprocedure('cron.schedule_in_database(text,text,text,text,text,boolean)') IS NOT NULL"
        ).fetchone()[0]
        try:
            with conn.transaction():  # both jobs or neither
                for kind, schedule in schedules.items():
                    name = job_name(kind, place.target_database)
                    if place.target_database == place.cron_database:
                        conn.execute("SELECT cron.schedule(%s, %s, %s)", [name, schedule, COMMANDS[kind]])
                    elif in_database:
                        conn.execute("SELECT cron.schedule_in_database(%s, %s, %s, %s)",
                                     [name, schedule, COMMANDS[kind], place.target_database])
                    else:
                        raise ScheduleError(
                            f"this pg_cron is too old to run jobs in another database (needs 1.4 or newer): "
                            f"set cron.database_name = {place.target_database!r}, or upgrade pg_cron")
        except psycopg.Error as exc:
            raise ScheduleError(f"pg_cron refused job {name!r} ({schedule!r}): "
                                f"{exc.diag.message_primary or exc}") from exc
    return list_jobs(dsn, place)


def list_jobs(dsn: str, place: CronPlace | None = None) -> list[Job]:
    """pgfeed's jobs for this database, with the outcome of each one's last run."""
    place = place or locate_cron(dsn, create_extension=False)
    names = [job_name(kind, place.target_database) for kind in COMMANDS]
    with psycopg.connect(place.cron_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT j.jobid, j.jobname, j.schedule, j.command, j.database, j.active,"
            "       r.status, r.end_time::text"
            " FROM cron.job j"
            " LEFT JOIN LATERAL (SELECT d.status, d.end_time FROM cron.job_run_details d"
            "                    WHERE d.jobid = j.jobid ORDER BY d.runid DESC LIMIT 1) r ON true"
            " WHERE j.jobname = ANY(%s) ORDER BY j.jobname", [names]).fetchall()
    return [Job(*row) for row in rows]


def remove_jobs(dsn: str) -> list[str]:
    """Unschedule pgfeed's jobs for this database; the names removed."""
    place = locate_cron(dsn, create_extension=False)
    removed = []
    with psycopg.connect(place.cron_dsn, autocommit=True) as conn:
        for job in list_jobs(dsn, place):
            conn.execute("SELECT cron.unschedule(%s::bigint)", [job.jobid])
            removed.append(job.jobname)
    return removed


# ---------------------------------------------------------------------------
# the command line


def _options(func):
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)
    func = click.option("--data-dir", type=click.Path(path_type=Path), envvar="PGFEED_DATA_DIR",
                        help="Data directory of the embedded server. Default: $PGFEED_DATA_DIR or a per-user "
                             "directory.")(func)
    func = click.option("--dsn", help="PostgreSQL DSN of the pgfeed database. Default: $PGFEED_DSN, then "
                                      "$DATABASE_URL, then the embedded server.")(func)
    return func


def _dsn(dsn: str | None, data_dir: Path | None) -> str:
    from . import database

    return database.resolve_dsn(dsn, data_dir)


def _print_jobs(jobs: list[Job], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([asdict(job) for job in jobs]))
        return
    if not jobs:
        click.echo("no pgfeed jobs scheduled for this database")
        return
    for job in jobs:
        state = "active" if job.active else "inactive"
        last = f"last run {job.last_status} at {job.last_run}" if job.last_status else "not run yet"
        click.echo(f"{job.jobid:>5}  {job.jobname:<40} {job.schedule:<14} {state:<8} {job.command}  ({last})")


@click.group()
def schedule():
    """pg_cron jobs for pgfeed's periodic work (maintenance, recommendations).

    \b
    Example:
        pgfeed schedule install        # every 10 minutes + nightly, idempotent
        pgfeed schedule list
        pgfeed schedule remove
    """


@schedule.command("install")
@click.option("--maintenance", "maintenance_schedule", default=DEFAULT_MAINTENANCE_SCHEDULE, show_default=True,
              help="Cron schedule of feed.run_maintenance().")
@click.option("--recommendations", "recommendations_schedule", default=DEFAULT_RECOMMENDATIONS_SCHEDULE,
              show_default=True, help="Cron schedule of feed.build_recommendations().")
@_options
def schedule_install(maintenance_schedule, recommendations_schedule, dsn, data_dir, as_json):
    """Create or update the pg_cron jobs of this database (needs pg_cron loaded on the server)."""
    jobs = install_jobs(_dsn(dsn, data_dir), maintenance_schedule, recommendations_schedule)
    _print_jobs(jobs, as_json)


@schedule.command("list")
@_options
def schedule_list(dsn, data_dir, as_json):
    """pgfeed's pg_cron jobs for this database and how their last run went."""
    _print_jobs(list_jobs(_dsn(dsn, data_dir)), as_json)


@schedule.command("remove")
@_options
def schedule_remove(dsn, data_dir, as_json):
    """Unschedule pgfeed's pg_cron jobs for this database."""
    removed = remove_jobs(_dsn(dsn, data_dir))
    if as_json:
        click.echo(json.dumps(removed))
    else:
        click.echo(f"removed {len(removed)} job(s)" + (": " + ", ".join(removed) if removed else ""))
