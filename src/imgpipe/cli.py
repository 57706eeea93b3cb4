"""The ``imgpipe`` command line: the pipeline on the embedded local cloud."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from localcloud.cloud import REGION, LocalCloud, LocalCloudError, Stack
from localcloud.runner import InputError, Result, input_files, process
from localcloud.sam import ROOT, TemplateError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
err = Console(stderr=True)


class UsageError(Exception):
    pass


def _parameters(pairs: Sequence[str]) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--parameter takes KEY=VALUE, got {pair!r}")
        parameters[key] = value
    return parameters


def _files(paths: Sequence[str]) -> list[Path]:
    return input_files(paths)


def _table(results: Sequence[Result]) -> Table:
    table = Table(title="imgpipe")
    for column in ("file", "status", "renditions", "bytes in", "bytes out", "seconds", "error"):
        table.add_column(column, justify="right" if column.startswith(("bytes", "sec")) else "left")
    for r in results:
        size_in = Path(r.file).stat().st_size if Path(r.file).exists() else 0
        size_out = sum(o.bytes for o in r.outputs)
        style = "green" if r.status == "SUCCEEDED" else "red"
        table.add_row(
            Path(r.file).name,
            f"[{style}]{r.status}[/]",
            ", ".join(Path(o.key).name for o in r.outputs),
            f"{size_in:,}",
            f"{size_out:,}",
            f"{r.seconds:.2f}",
            f"{r.error}: {r.cause}" if r.error else "",
        )
    return table


class LogFile:
    """Function output and REPORT lines, appended to one file (workers write from many threads)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._file = path.open("w", encoding="utf-8")

    def write(self, line: str) -> None:
        with self._lock:
            self._file.write(line.rstrip("\n") + "\n")
            self._file.flush()

    def sink(self, function: str, line: str) -> None:
        self.write(f"[{function}] {line}")

    def close(self) -> None:
        self._file.close()


def _run_process(
    files: list[Path], out: Path, parameters: dict[str, str], as_json: bool, time_scale: float = 1.0
) -> int:
    out.mkdir(parents=True, exist_ok=True)
    log = LogFile(out / "logs" / "functions.log")

    def report(line: str) -> None:
        log.write(line)
        if not as_json:
            err.print(line, style="dim", highlight=False, markup=False, soft_wrap=True)

    try:
        with LocalCloud(report=report, log_sink=log.sink, time_scale=time_scale) as cloud:
            stack = cloud.deploy(parameters)
            results = _follow(cloud, stack, files, out, as_json)
    finally:
        log.close()
    if as_json:
        for result in results:
            print(result.to_json())
    else:
        whole_console().print(_table(results))
        saved = sum(Path(r.file).stat().st_size - sum(o.bytes for o in r.outputs) for r in results if r.outputs)
        Console().print(f"outputs in {out}/ ; function logs and REPORT lines in {log.path}")
        Console().print(f"bytes saved against the originals: {saved:,}")
    return EXIT_OK if all(r.status == "SUCCEEDED" for r in results) else EXIT_FAILED


def _follow(cloud: LocalCloud, stack: Stack, files: list[Path], out: Path, as_json: bool) -> list[Result]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=as_json,
    ) as progress:
        task = progress.add_task("processing", total=len(files))
        return process(cloud, stack, files, out, on_progress=lambda _r: progress.advance(task))


def cmd_process(args: argparse.Namespace) -> int:
    return _run_process(_files(args.paths), Path(args.out), _parameters(args.parameter), args.json, args.time_scale)


def cmd_demo(args: argparse.Namespace) -> int:
    from imgpipe.contact_sheet import contact_sheet

    files = _files([str(ROOT / "samples")])
    files = [f for f in files if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")]
    out = Path(args.out)
    code = _run_process(files, out, _parameters(args.parameter), False)
    sheet = contact_sheet(files, out, out / "contact-sheet.jpg")
    Console().print(f"contact sheet: {sheet}")
    return code


def _serve_table(cloud: LocalCloud, stack: Stack, urls: dict[str, str]) -> Table:
    table = Table(title=f"imgpipe local cloud on {cloud.endpoint}", show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, overflow="ignore")
    for name, url in urls.items():
        table.add_row(name, Text(url))
    for key, value in sorted(stack.outputs.items()):
        table.add_row(key, Text(value))
    return table


def cmd_serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    # Both stop it cleanly, also when started in the background (where SIGINT arrives ignored).
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def show(line: str) -> None:
        err.print(line, highlight=False, markup=False, soft_wrap=True)

    from imgpipe.console.backend import local_backend
    from imgpipe.console.server import ConsoleServer

    with LocalCloud(
        host=args.host, port=args.port, api_port=args.api_port, report=show, time_scale=args.time_scale
    ) as cloud:
        stack = cloud.deploy(_parameters(args.parameter))
        console = ConsoleServer(local_backend(cloud.endpoint), host=args.host, port=args.console_port, subscribe=True)
        with console:
            urls = {**cloud.urls(), **({"api": cloud.api_url} if cloud.api_url else {}), "console": console.url}
            if args.json:
                ready = {
                    "endpointUrl": cloud.endpoint,
                    "apiUrl": cloud.api_url,
                    "consoleUrl": console.url,
                    "region": REGION,
                    "outputs": stack.outputs,
                    "urls": urls,
                }
                print(json.dumps(ready), flush=True)
                show("Ctrl-C stops it.")
            else:
                _serve_hints(cloud, stack, urls, console.url)
            while not stop.wait(0.5):
                pass
            show("stopping")
    err.print("stopped")
    return EXIT_OK


def _serve_hints(cloud: LocalCloud, stack: Stack, urls: dict[str, str], console_url: str) -> None:
    whole_console().print(_serve_table(cloud, stack, urls))
    out = Console(soft_wrap=True, highlight=False)
    target = f"s3://{stack.source_bucket}/{stack.upload_prefix}"
    out.print(f"try: aws --endpoint-url {cloud.endpoint} s3 cp photo.jpg {target}", markup=False)
    out.print(f"  or: imgpipe upload photo.jpg --api-url {cloud.api_url} --wait", markup=False)
    out.print(f"  or: open the console, {console_url}", markup=False)
    out.print("Ctrl-C stops it.")


def cmd_console(args: argparse.Namespace) -> int:
    from imgpipe.console.backend import deployed_backend, local_backend
    from imgpipe.console.server import ConsoleServer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.endpoint_url:
        backend = local_backend(args.endpoint_url, args.stack)
    else:
        backend = deployed_backend(args.stack, args.region)
    subscribe = args.subscribe or backend.local
    with ConsoleServer(
        backend, host=args.host, port=args.port, subscribe=subscribe, api_token=args.api_token
    ) as console:
        where = "the local cloud at " + str(backend.endpoint) if backend.local else f"AWS, {backend.region}"
        print(f"console for stack {backend.stack_name} on {where}: {console.url}", flush=True)
        if not subscribe:
            err.print("messages: not subscribed to the topic (--subscribe does, for as long as the console runs)")
        err.print("Ctrl-C stops it.")
        while not stop.wait(0.5):
            pass
    err.print("stopped")
    return EXIT_OK


def _uploads_table(results: Sequence[Any]) -> Table:
    table = Table(title="imgpipe upload")
    for column in ("file", "id", "status", "error", "renditions"):
        table.add_column(column)
    for r in results:
        style = "green" if r.status == "SUCCEEDED" else "yellow" if r.status == "PENDING" else "red"
        renditions = "\n".join(f"{x['width']}w {x['format']} {x['bytes']:,} B {x['url']}" for x in r.renditions)
        error = ": ".join(part for part in (r.error, r.reason) if part)
        table.add_row(r.file.name, r.id, f"[{style}]{r.status}[/]", Text(error), Text(renditions))
    return table


def cmd_upload(args: argparse.Namespace) -> int:
    from imgpipe import upload as uploading

    files = _files(args.paths)

    def run(api_url: str, wait: bool) -> list[uploading.Uploaded]:
        client = uploading.Client(api_url, token=args.token)
        show = lambda r: err.print(f"{r.file.name}: {r.status}", highlight=False, markup=False)  # noqa: E731
        return uploading.upload(client, files, wait=wait, timeout_s=args.timeout, on_change=show)

    if args.api_url:
        results = run(args.api_url, args.wait)
    else:  # a fresh local cloud lives as long as this command: its uploads are waited for
        with LocalCloud() as cloud:
            cloud.deploy(_parameters(args.parameter))
            results = run(str(cloud.api_url), True)
    whole_console().print(_uploads_table(results))
    wanted = {"SUCCEEDED"} if args.wait or not args.api_url else {"SUCCEEDED", "PENDING", "PROCESSING"}
    return EXIT_OK if all(r.status in wanted for r in results) else EXIT_FAILED


def whole_console() -> Console:
    """A console that prints every value whole: as wide as a table needs, on a terminal or not (rich
    would otherwise fit tables to the terminal, or to 80 columns when stdout is no terminal, and cut
    ARNs and URLs short). Tables take only the width they need."""
    return Console(width=1 << 12)


def _measurement(run: Callable[[argparse.Namespace, Console], int]) -> Callable[[argparse.Namespace], int]:
    """A measurement command's ``run``, printing its tables on ``whole_console()``."""
    return lambda args: run(args, whole_console())


def cmd_start_execution(args: argparse.Namespace) -> int:
    from localcloud.manual import print_path, start_manual_execution

    document = json.loads(Path(args.input).read_text(encoding="utf-8"))
    if args.endpoint_url:
        described, history = start_manual_execution(args.endpoint_url, document, None)
    else:
        with LocalCloud() as cloud:
            stack = cloud.deploy(_parameters(args.parameter))
            described, history = start_manual_execution(cloud.endpoint, document, stack)
    print_path(whole_console(), described, history)
    return EXIT_OK if described["status"] == "SUCCEEDED" else EXIT_FAILED


def _add_upload(sub: Any) -> None:
    p = sub.add_parser("upload", help="upload images through the upload API, as an app does")
    p.add_argument("paths", nargs="+", help="files or directories")
    p.add_argument(
        "--api-url", help="a running `imgpipe serve`'s apiUrl or a stack's ApiUrl (default: a fresh local cloud)"
    )
    p.add_argument("--wait", action="store_true", help="poll each upload's status until it ends")
    p.add_argument("--token", help="a JWT for an API deployed with ApiAuth=JWT")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits at most (default 600)")
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_upload)


def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the local cloud as a server for the AWS CLI and boto3")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4566)
    p.add_argument("--api-port", type=int, default=4567, help="where the upload API is served (default 4567)")
    p.add_argument(
        "--console-port", type=int, help="where the web console is served (default 4568, or a free port if taken)"
    )
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply Retry/Wait times (default 1: real)")
    p.add_argument(
        "--json",
        action="store_true",
        help="once ready, print one JSON object on stdout: endpointUrl, apiUrl, consoleUrl, region, outputs, urls",
    )
    p.set_defaults(func=cmd_serve)


def _add_console(sub: Any) -> None:
    p = sub.add_parser(
        "console",
        help="the web console for a deployed stack (your AWS credentials), or a running `imgpipe serve`",
    )
    p.add_argument("--stack", required=True, help="the stack's name (its outputs say where everything is)")
    p.add_argument("--region", help="the stack's region (default: boto3's, from AWS_REGION or the AWS config)")
    p.add_argument("--host", default="127.0.0.1", help="where to listen (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, help="where to listen (default 4568, or a free port if taken)")
    p.add_argument(
        "--subscribe",
        action="store_true",
        help="subscribe an SQS queue to the topic while the console runs (deleted when it stops)",
    )
    p.add_argument("--endpoint-url", help="a running `imgpipe serve`'s endpointUrl instead of AWS")
    p.add_argument("--api-token", help="a JWT for an upload API deployed with ApiAuth=JWT")
    p.set_defaults(func=cmd_console)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="imgpipe", description="The image pipeline on an embedded local cloud.")
    sub = root.add_subparsers(dest="command", required=True)

    p = sub.add_parser("process", help="process image files end to end")
    p.add_argument("paths", nargs="+", help="files or directories")
    p.add_argument("--out", default="out", help="where to write the renditions (default ./out)")
    p.add_argument("--json", action="store_true", help="one JSON object per input, one per line")
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE", help="template parameter")
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply Retry/Wait times (default 1: real)")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("demo", help="process samples/ and write a contact sheet")
    p.add_argument("--out", default="out")
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_demo)

    _add_serve(sub)

    from imgpipe_bench import bench, local_cloud, staging, throughput
    from imgpipe_bench.cost import command as cost
    from imgpipe_bench.imaging import command as imaging
    from imgpipe_bench.load import command as load

    p = sub.add_parser("bench", help=bench.HELP, description=bench.DESCRIPTION)
    bench.add_arguments(p)
    p.set_defaults(func=_measurement(bench.run))
    parts = p.add_subparsers(dest="part", metavar="[PART]", title="one measurement on its own (its options after it)")
    measured = {"imaging": imaging, "load": load, "local": local_cloud, "staging": staging, "throughput": throughput}
    for name, part in measured.items():
        q = parts.add_parser(name, help=part.HELP, description=part.DESCRIPTION)
        part.add_arguments(q)
        q.set_defaults(func=_measurement(part.run))

    p = sub.add_parser(
        "cost", help="cost per 1M images on Standard and Express, x86 and arm64", description=cost.DESCRIPTION
    )
    cost.add_arguments(p)
    p.set_defaults(func=_measurement(cost.run))

    _add_upload(sub)
    _add_console(sub)

    p = sub.add_parser("start-execution", help="start a manual execution with an input from events/")
    p.add_argument("--input", required=True, help="a JSON file, e.g. events/manual-execution.json")
    p.add_argument("--endpoint-url", help="a running `imgpipe serve` (default: a fresh local cloud)")
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_start_execution)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    usage_errors: tuple[type[Exception], ...] = (
        UsageError,
        InputError,
        FileNotFoundError,
        json.JSONDecodeError,
        *_command_errors(),
    )
    try:
        code: int = args.func(args)
        return code
    except usage_errors as exc:
        err.print(f"[red]imgpipe: {exc}[/]")
        return EXIT_USAGE
    except (LocalCloudError, TemplateError) as exc:
        err.print(f"[red]imgpipe: the local cloud failed to start: {exc}[/]")
        return EXIT_USAGE


def _command_errors() -> tuple[type[Exception], ...]:
    from imgpipe.console.backend import ConsoleError
    from imgpipe.upload import UploadError

    return UploadError, ConsoleError


if __name__ == "__main__":
    sys.exit(main())
