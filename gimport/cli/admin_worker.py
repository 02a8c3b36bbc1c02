"""The body of one worker process of `gimport admin run` (gimport.admin.processes): the same AdminRun as a
single-process run, over its part of the users, reporting to the parent through a pipe. Signals as in a
single run: the first Ctrl-C or SIGTERM stops cleanly (the parent asks the same through the pipe), a second
Ctrl-C quits at once. It prints nothing itself: the parent renders."""

from __future__ import annotations

from multiprocessing.connection import Connection

from gimport import i18n
from gimport.admin.processes import PipeReporter, WorkerSpec, listen_for_stop, result_of


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    from gimport.admin.checks import service_account
    from gimport.admin.run import AdminRun
    from gimport.cli.memory import bound_heap
    from gimport.cli.terminal import StopOnSignal
    from gimport.logs import admin_logging

    bound_heap()
    i18n.install()
    reporter = PipeReporter(conn)
    with admin_logging(spec.log_file, spec.verbose) as router:
        runner = AdminRun(
            spec.settings,
            spec.users,
            authorize=service_account(spec.settings).authorize,
            shard=spec.shard,
            reporter=reporter,
            log_router=router,
            everybody=spec.everybody,
            part=spec.part,
        )
        reporter.rate_limited = runner.rate_limited
        listen_for_stop(conn, runner.request_stop)
        with StopOnSignal(runner.request_stop, lambda _text: None):
            summary = runner.run()
    reporter.close(result_of(summary, runner.rate_limited()))
    conn.close()
