"""The ``edge`` command: run, dashboard, user, record, replay, sim, calibrate, bench,
detect, evaluate, config."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edge.config import ConfigError, EdgeConfig, dump_config, load_config

if TYPE_CHECKING:
    from edge.detect.model import ModelInfo

FP32_EXPORT = Path("runs/lite0/lite0.fp32.onnx")  # written by `make train`


def _config(args) -> EdgeConfig:
    return load_config(args.config)


def cmd_config(args) -> int:
    config = _config(args)
    if args.schema:
        print(json.dumps(EdgeConfig.model_json_schema(), indent=1))
    else:
        print(dump_config(config), end="")
    return 0


def cmd_sim(args) -> int:
    from simulator.dataset import write_dataset

    config = _config(args)
    summary = write_dataset(config, args.parcels, Path(args.out), seed=args.seed,
                            progress=not args.quiet)
    print(json.dumps(summary))
    return 0


def cmd_calibrate(args) -> int:
    config = _config(args)
    if args.what == "thresholds":
        return _calibrate_thresholds(args, config)
    if config.scanner.type != "sim":
        print(f"edge: scanner.type {config.scanner.type} cannot take dark and air lines on "
              "command; docs/scanner-tcp.md says how to write the flat-field tables",
              file=sys.stderr)
        return 2
    from simulator.harness import calibrate_flatfield

    path = calibrate_flatfield(config, lines=args.lines, out=args.out)
    print(f"wrote {path}")
    return 0


def _calibrate_thresholds(args, config: EdgeConfig) -> int:
    from edge.decide import THRESHOLDS_FILE, thresholds_table
    from edge.detect.verify import cascade_version
    from edge.tools.calibrate import as_json, calibrate_thresholds, read_items, report, score_set
    from edge.tools.labelsets import LabelsetError

    if not args.data and args.replay is None:
        print("edge: calibrate thresholds needs --data (labelled scans: COCO .json, VOC "
              "or YOLO folders) or --replay (a replay's report folder)", file=sys.stderr)
        return 2
    if args.data and args.replay is not None:
        print("edge: give --data or --replay, not both", file=sys.stderr)
        return 2
    if args.recall <= 0 or args.target_pd == 0:
        print("edge: --recall and --target-pd must be above 0", file=sys.stderr)
        return 2
    if args.target_far == 1:
        print("edge: --target-far must be below 1", file=sys.stderr)
        return 2
    det = config.detector
    if args.replay is not None:
        from edge.tools.replay import ReplayRun
        path = args.replay / "detections-model1.jsonl" if args.replay.is_dir() else args.replay
        try:
            run = ReplayRun.load(path)
        except ValueError as exc:
            print(f"edge: {exc}", file=sys.stderr)
            return 2
        scored, checked, version = run.scored_set(), None, run.version
        if not scored.images:
            print(f"edge: {path} holds no parcel with ground truth to calibrate on",
                  file=sys.stderr)
            return 2
    else:
        try:
            items, held_out = read_items(args.data), read_items(args.check)
        except LabelsetError as exc:
            print(f"edge: {exc}", file=sys.stderr)
            return 2
        detector = _open_detector(args, config)
        if detector is None:
            return 2
        verifier = _open_verifier(args.verifier, config, detector.info, args.model)
        if verifier is False:
            return 2
        version = cascade_version(detector.info.version, verifier)
        scored = score_set(detector, items, det.iou_threshold, det.box_voting, not args.json,
                           verifier)
        checked = score_set(detector, held_out, det.iou_threshold, det.box_voting,
                            not args.json, verifier) if held_out else None
    if args.target_pd is not None or args.target_far is not None:
        from edge.tools.calibrate import calibrate_parcels, parcel_json, parcel_report
        cal = calibrate_parcels(scored, det.score_threshold, args.target_pd, args.target_far,
                                checked)
        as_json, report = parcel_json, parcel_report
        if not cal.thresholds:
            print(f"edge: {parcel_report(cal)}; nothing written", file=sys.stderr)
            return 1
    else:
        cal = calibrate_thresholds(scored, args.recall, det.score_threshold, checked)
        if not cal.thresholds:
            print("edge: no class had a labelled object the model found; nothing written",
                  file=sys.stderr)
            return 1
    out = args.out or Path(config.calibration_dir) / THRESHOLDS_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    table = thresholds_table(version, cal.thresholds)
    out.write_text(json.dumps(table, indent=1) + "\n")
    folders = {}
    if args.by_folder and checked is not None:
        from edge.tools.calibrate import check, check_json, folder_report
        folders = {name: check(part, cal.thresholds, det.score_threshold)
                   for name, part in checked.by_folder().items()}
    if args.json:
        extra = {"held_out_by_folder": {k: check_json(c) for k, c in folders.items()}} \
            if folders else {}
        print(json.dumps(as_json(cal) | extra | {"out": str(out)}))
    else:
        by_folder = f"\nheld-out images by folder, at the thresholds written\n" \
            f"{folder_report(folders)}" if folders else ""
        print(f"{report(cal)}{by_folder}\nwrote {out}")
    return 0


def cmd_bench(args) -> int:
    config = _config(args)
    if args.what == "sim":
        from edge.tools.bench_pipeline import bench_sim

        result = bench_sim(config.scanner, parcels=args.parcels or 20)
        if args.json:
            print(json.dumps(result))
        else:
            width = max(map(len, result))
            for key, value in result.items():
                print(f"{key:<{width}}  {value}")
        return 0
    if args.what == "model":
        return _bench_model(args, config)
    if args.what == "faults":
        return _bench_faults(args)
    if args.what == "store":
        from edge.tools.bench_store import bench_store

        result = bench_store(args.parcels or 100_000)
        if args.json:
            print(json.dumps(result))
            return 0
        print(f"store of {result['parcels']} parcels (filled in {result['fill_s']} s)")
        for group in ("store", "http"):
            for name, figures in result.get(group, {}).items():
                print(f"  {group:<5} {name:<28} p50 {figures['p50_ms']:>8.2f} ms   "
                      f"max {figures['max_ms']:>8.2f} ms")
        return 0
    if args.what == "pipeline":
        from edge.tools.bench_pipeline import bench_pipeline

        stores = {"on": (True,), "off": (False,), "both": (False, True)}[args.store]
        result = bench_pipeline(args.config, args.speeds or [500, 1000, 1500, 2000, 2500],
                                args.seconds or 12.0, stores=stores, repeats=args.repeats)
        if args.json:
            print(json.dumps(result))
            return 0
        print(f"live loop, {result['detector']}, {args.seconds or 12.0:g} s per belt speed")
        for row in result["rows"]:
            print("  ".join(f"{k} {v}" for k, v in row.items()))
        print(f"highest sustained belt speed: {result['highest_sustained_mm_s']} mm/s; "
              f"peak memory {result['peak_rss_mb']} MB")
        for speed, cost in result.get("store_cost", {}).items():
            print(f"store at {speed} mm/s: decision latency p99 {cost['p99_ms_with_store']} ms "
                  f"with it, {cost['p99_ms_without']} ms without (median of {args.repeats}): "
                  f"x{cost['ratio']}")
        return 0
    from edge.tools.bench_detect import bench_nms, bench_stages, simulated_parcel

    if args.model:   # read the parcel first: a bad path fails before a minute of NMS timing
        import cv2

        if args.image:
            image, source = cv2.imread(str(args.image), cv2.IMREAD_UNCHANGED), str(args.image)
            if image is None:
                print(f"edge: cannot read image {args.image}", file=sys.stderr)
                return 2
        else:
            image, source = simulated_parcel(config)
    result = bench_nms()
    if args.model:
        result["stages"] = {"parcel": source, **bench_stages(args.model, image)}
    if args.json:
        print(json.dumps(result))
        return 0
    rows = result["rows"]
    columns = list(rows[0])
    print(f"batched NMS, IoU {result['iou_threshold']}, median ms per call "
          f"(peers: {', '.join(result['peers'])})")
    print("  ".join(f"{c:>18}" for c in columns))
    for row in rows:
        print("  ".join(f"{row[c]!s:>18}" for c in columns))
    print("(torchvision as a third peer: python scripts/bench_nms_torchvision.py; the runtime "
          "never imports torch)")
    if "stages" in result:
        s = result["stages"]
        print(f"per parcel: {s['parcel']}, {s['image'][0]} x {s['image'][1]} px, "
              f"{s['tiles']} tile(s), {s['candidates']} candidates, {s['kept']} kept")
        print(f"  in turn, as the live loop runs them: pre {s['pre_ms']} ms, session run "
              f"{s['session_run_ms']} ms, post {s['post_ms']} ms; pre + post "
              f"{100 * s['pre_post_share_of_run']:.1f} % of the run")
        print(f"  call after call (warm caches): pre {s['pre_warm_ms']} ms, "
              f"post {s['post_warm_ms']} ms")
    return 0


def _bench_faults(args) -> int:
    from simulator.soak import FAULT_AT_S, SPEEDS, soak

    columns = ["fault", "speed_mm_s", "parcels", "threat_parcels", "passed_threats", "alarms",
               "alarm_after_s", "applied_twice", "lost_counted", "lost_seen", "lost_unheard",
               "uninspected", "false_diverts", "ok"]
    def show(row: dict) -> None:
        print("  ".join(str(row[c]) for c in columns), flush=True)

    seconds = args.seconds or 6.0
    if not args.json:
        print(f"fault soak: {seconds:g} s a run, faults from {FAULT_AT_S:g} s; a run holds when "
              "no threat passed, nothing was applied twice, lost commands were counted "
              "exactly (but for applied ones whose every ACK was dropped: lost_unheard) and a "
              "fault that breaks the output path raised an alarm")
        print("  ".join(columns))
    try:
        rows = soak(seconds, args.speeds or SPEEDS, args.only, None if args.json else show)
    except ValueError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    failed = [f"{r['fault']} at {r['speed_mm_s']:g} mm/s" for r in rows if not r["ok"]]
    if args.json:
        print(json.dumps({"seconds": seconds, "rows": rows, "failed": failed}))
    else:
        print(f"{len(rows) - len(failed)} of {len(rows)} runs held"
              + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _bench_model(args, config) -> int:
    from edge.tools.bench_detect import bench_models

    paths = args.models or [p for p in (config.detector.model, FP32_EXPORT) if p]
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        print(f"edge: no model file {', '.join(missing)}; `make train` makes both",
              file=sys.stderr)
        return 2
    if args.per_parcel:
        return _bench_parcels(args, config, [Path(p) for p in paths])
    result = bench_models([Path(p) for p in paths])
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"bare session.run, median ms over {result['repeats']} runs, "
          f"{result['threads']} threads, measured in one run")
    for row in result["rows"]:
        print("  ".join(f"{k} {v}" for k, v in row.items()))
    return 0


def _bench_parcels(args, config, paths: list[Path]) -> int:
    from edge.tools.bench_detect import bench_parcels, simulated_parcels

    verifiers = _one_or_each(args.verifier, paths, "--verifier")
    verify_at = _one_or_each(args.verify_at, paths, "--verify-at")
    if verifiers is None or verify_at is None:
        return 2
    seconds = []
    for path, choice, at in zip(paths, verifiers, verify_at, strict=True):
        pair = _second_look(config, path, choice, at)
        if pair is False:
            return 2
        seconds.append(pair)
    result = bench_parcels(paths, simulated_parcels(config, args.parcels or 20), seconds=seconds)
    if args.json:
        print(json.dumps(result))
        return 0
    height, width = result["median_image"]
    print(f"whole parcels (pre, every tile, post), median over {result['parcels']} simulated "
          f"parcels (median image {height} x {width} px), {result['threads']} threads, "
          "measured in one run")
    for row in result["rows"]:
        print("  ".join(f"{k} {v}" for k, v in row.items()))
    return 0


def _one_or_each(values: list | None, paths: list[Path], flag: str) -> list | None:
    """``values`` of a flag given once for every model or once per model, one per model; None
    after saying why not."""
    if not values:
        return [None] * len(paths)
    if len(values) == 1:
        return values * len(paths)
    if len(values) == len(paths):
        return list(values)
    print(f"edge: {flag} takes one value for every model or one per model ({len(paths)}), "
          f"got {len(values)}", file=sys.stderr)
    return None


def _configured_version(config: EdgeConfig) -> str | None:
    """The version of the configured model, None where none is configured or on disk."""
    configured = config.detector.model
    if configured is None or not Path(configured).is_file():
        return None
    path = Path(configured).resolve()
    return _model_version(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _model_version(path: str, mtime_ns: int) -> str:
    """The version a model file names (``mtime_ns`` keys a file rewritten in place apart)."""
    from edge.detect.model import Detector
    return Detector(Path(path), threads=1, warmup=False).info.version


def _second_look(config: EdgeConfig, path: Path, choice: str | None, verify_at: float | None):
    """The second look a benchmarked model runs with and the score from which it looks again,
    as ``(verifier, verify_at)``; None for the model alone; False after saying why not.
    Without a ``choice``, the configured second look serves only a model of the configured
    model's version (``_open_verifier``). Without a ``verify_at``, the lowest threshold the
    live loop would decide the pair with, or detector.score_threshold where no calibrated
    table is made for the pair."""
    from edge.decide import Policy
    from edge.detect.model import Detector
    from edge.detect.verify import cascade_version

    info = Detector(path, threads=1, warmup=False).info
    verifier = _open_verifier(choice, config, info, path)
    if verifier is None or verifier is False:
        return verifier
    if verify_at is None:
        try:
            policy = Policy.from_config(config, info.classes,
                                        cascade_version(info.version, verifier))
            verify_at = float(policy.thresholds.min())
        except ValueError as exc:
            verify_at = config.detector.score_threshold
            print(f"edge: {path} with {verifier.path} looks again from the default score "
                  f"{verify_at} ({exc}); --verify-at sets it", file=sys.stderr)
    return verifier, verify_at


def _open_verifier(choice: str | None, config: EdgeConfig, info: ModelInfo,
                   model: Path | None = None):
    """The second look of ``choice`` (``--verifier``: a file, "none", or None: the config's)
    for a detector of ``info`` read from ``model`` (None: the configured one), None for none,
    or False after saying why it cannot be used. Without a choice, the configured second look
    serves only a model of the configured model's version: it was trained on that network's
    boxes, and its INT8 file and its float graph are both that network."""
    from edge.detect.model import ModelError
    from edge.detect.verify import Verifier
    if choice is None and model is not None and not _of_configured_network(model, info, config):
        choice = "none"
    path = config.detector.verifier if choice is None else \
        None if choice == "none" else Path(choice)
    if path is None:
        return None
    try:
        verifier = Verifier(path, config.detector.threads)
    except ModelError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return False
    if verifier.classes != tuple(info.classes):
        print(f"edge: verifier {path} was trained for classes {list(verifier.classes)}, the "
              f"model has {list(info.classes)}", file=sys.stderr)
        return False
    return verifier


def _of_configured_network(model: Path, info: ModelInfo, config: EdgeConfig) -> bool:
    """Whether the model at ``model`` is the configured model's network: that file, or one
    naming the same version (a version left "unknown" names no network)."""
    configured = config.detector.model
    if configured is None or Path(model).resolve() == Path(configured).resolve():
        return True
    return info.version != "unknown" and info.version == _configured_version(config)


def _open_detector(args, config: EdgeConfig):
    """The model of ``--model`` or the config, or None after saying why it cannot be used."""
    return _open_model(args.model, config)


def _open_model(path: Path | None, config: EdgeConfig):
    """The model at ``path`` (default: the config's), or None after saying why it cannot be
    used."""
    from edge.detect.model import Detector, ModelError

    model = path or config.detector.model
    if path is not None and not path.is_file():
        print(f"edge: model file {path} does not exist", file=sys.stderr)
        return None
    if model is None or not Path(model).is_file():
        missing = f"the configured model {model} does not exist yet" if model else \
            "no model is configured (detector.model)"
        print(f"edge: {missing}; train one with `make train`, or pass --model FILE",
              file=sys.stderr)
        return None
    try:
        return Detector(model, config.detector.providers, config.detector.threads)
    except ModelError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return None


def cmd_detect(args) -> int:
    from edge.detect.files import describe, detect_files

    config = _config(args)
    detector = _open_detector(args, config)
    if detector is None:
        return 2
    verifier = _open_verifier(args.verifier, config, detector.info, args.model)
    if verifier is False:
        return 2
    if verifier is not None:
        from edge.detect.verify import Verified
        detector = Verified(detector, verifier)
    conf = args.conf
    if conf is None:   # what the live loop would divert on: its calibrated table, or the default
        from edge.decide import Policy
        from edge.detect.verify import cascade_version
        try:
            conf = Policy.from_config(config, detector.info.classes,
                                      cascade_version(detector.info.version, verifier)).thresholds
        except ValueError as exc:   # a site table made for another model
            conf = config.detector.score_threshold
            print(f"edge: {exc}; detecting at detector.score_threshold {conf}", file=sys.stderr)
    failed = 0
    det = config.detector
    for result in detect_files(detector, args.paths, conf, det.iou_threshold, det.box_voting,
                               det.max_image_pixels):
        failed += "error" in result
        print(json.dumps(result) if args.json else describe(result), flush=True)
    return 1 if failed else 0


def cmd_evaluate(args) -> int:
    from edge.tools.calibrate import read_items
    from edge.tools.evaluate import confusion_report, evaluate_models, notes, parse_mapping, report
    from edge.tools.labelsets import LabelsetError, map_labels
    from edge.tools.metrics import json_ready

    config = _config(args)
    try:
        items = map_labels(read_items(args.data), parse_mapping(args.map), known=None)
    except LabelsetError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    detectors = [_open_model(path, config) for path in args.models or [None]]
    if any(d is None for d in detectors):
        return 2
    verifiers = [_open_verifier(args.verifier, config, d.info, path)
                 for path, d in zip(args.models or [None], detectors, strict=True)]
    if any(v is False for v in verifiers):
        return 2
    det = config.detector
    confusion_at = None
    if args.confusion or args.conf is not None:
        confusion_at = det.score_threshold if args.conf is None else args.conf
    result = evaluate_models(detectors, items, det.iou_threshold, det.box_voting,
                             progress=not args.json, confusion_at=confusion_at,
                             verifiers=verifiers)
    if args.json:
        print(json.dumps(json_ready(result)))
        return 0
    tables = [confusion_report(path, r["confusion"]) for path, r in result["models"].items()
              if "confusion" in r]
    print("\n\n".join(["\n".join([report(result["models"]), *notes(result)]), *tables]))
    return 0


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def with_faults(config: EdgeConfig, specs: list[str]) -> EdgeConfig:
    """``config`` with the ``--fault NAME[=VALUE]`` options on top of its ``faults:``."""
    from pydantic import ValidationError

    from edge.config import FaultsConfig, format_validation_error
    from edge.faults import parse_fault

    if not specs:
        return config
    try:
        given = dict(parse_fault(spec) for spec in specs)
        faults = FaultsConfig(**(config.faults.model_dump() | given))
        joined = config.model_copy(update={"faults": faults})
        joined._faults_fit_the_plc()
    except ValueError as exc:
        detail = format_validation_error(exc) if isinstance(exc, ValidationError) else exc
        raise ConfigError(f"--fault: {detail}") from None
    return joined


def cmd_run(args) -> int:
    from edge.pipeline import Hub, StartError, run

    config = with_faults(_config(args), args.fault)
    dashboard = None
    if config.dashboard.enabled and not args.no_dashboard:
        try:
            dashboard = start_dashboard(config)
        except StartError as exc:
            print(f"edge: cannot start: {exc}", file=sys.stderr)
            return 2
    if config.scanner.type == "sim":
        from simulator.harness import SimulatedHub as build
    else:
        build = Hub.from_config
    record = {} if args.record is None else \
        {"record": args.record, "record_max_bytes": None if args.record_max_mb is None
         else int(args.record_max_mb * 1e6)}
    try:
        return run(config, build, duration_s=args.duration, summary_path=args.summary,
                   **record)
    except StartError as exc:
        print(f"edge: cannot start: {exc}", file=sys.stderr)
        return 2
    finally:
        if dashboard is not None:
            dashboard.should_exit = True


def start_dashboard(config: EdgeConfig):
    """Serve the dashboard over the store on a thread of this process (the live loop's);
    returns the uvicorn server (set ``should_exit`` to stop it). With no user yet, makes an
    admin with a one-time password and prints it: there is no default password."""
    import socket
    import threading
    import time

    import uvicorn

    from edge.dashboard.app import create_app
    from edge.pipeline import StartError
    from edge.store import Store

    cfg = config.dashboard
    if not config.store.enabled:
        raise StartError("the dashboard shows the parcel store: with store.enabled false, run "
                         "with --no-dashboard")
    store = Store(config.store.dir)
    if not store.users():
        password = first_admin(store)
        print(f"dashboard: no users yet; made user 'admin' with the one-time password "
              f"{password} (change it: edge user passwd admin)", flush=True)
    # Bound here, so that a port in use stops the start with a clear message.
    sock = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.host, cfg.port))
    except OSError as exc:
        sock.close()
        raise StartError(f"the dashboard cannot listen on {cfg.host}:{cfg.port}: {exc} "
                         "(set dashboard.port, or run with --no-dashboard)") from None
    server = uvicorn.Server(uvicorn.Config(
        create_app(store, secure_cookies=cfg.secure_cookies, zone=cfg.zone),
        log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="dashboard",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise StartError("the dashboard did not start (see the messages above)")
    print(f"dashboard: http://{cfg.host}:{cfg.port}/", flush=True)
    return server


def first_admin(store) -> str:
    import secrets

    from edge.dashboard.auth import hash_password

    password = secrets.token_urlsafe(12)
    store.add_user("admin", "admin", hash_password(password), by="edge run")
    return password


def cmd_dashboard(args) -> int:
    from edge.dashboard.app import serve
    from edge.store import SchemaError, Store

    config = _config(args)
    root = args.store or config.store.dir
    if not (Path(root) / "edge.db").is_file():
        print(f"edge: no store at {root} (edge run makes one; --store names another)",
              file=sys.stderr)
        return 2
    try:
        store = Store(root)
    except SchemaError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    if not store.users():
        print(f"dashboard: no users yet; made user 'admin' with the one-time password "
              f"{first_admin(store)} (change it: edge user passwd admin)", flush=True)
    store.close()
    serve(root, host=args.host or config.dashboard.host, port=args.port or config.dashboard.port,
          secure_cookies=config.dashboard.secure_cookies, zone=config.dashboard.zone)
    return 0


def _new_password(args) -> str:
    """The password from stdin: typed twice on a terminal, else the first line of a pipe."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            raise ValueError("the two passwords differ")
    else:
        first = sys.stdin.readline().rstrip("\r\n")
    if len(first) < 10:
        raise ValueError("a password needs at least 10 characters")
    return first


def cmd_user(args) -> int:
    from edge.dashboard.auth import hash_password
    from edge.store import Store, StoreError

    store = Store(args.store or _config(args).store.dir)
    try:
        if args.action == "list":
            for user in store.users():
                print(f"{user['name']}\t{user['role']}\t{user['language']}"
                      + ("\tdisabled" if user["disabled"] else ""))
            return 0
        if args.action == "add":
            if not args.role:
                raise StoreError("edge user add needs --role operator, engineer or admin")
            store.add_user(args.name, args.role, hash_password(_new_password(args)),
                           by="edge user add")
            print(f"user {args.name!r} added as {args.role}")
            return 0
        if store.user(args.name) is None:
            raise StoreError(f"no user {args.name!r}")
        store.set_password_hash(args.name, hash_password(_new_password(args)))
        store.audit("edge user passwd", "password-changed", detail={"name": args.name})
        print(f"password of {args.name!r} changed")
        return 0
    except (StoreError, ValueError) as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2


def cmd_record(args) -> int:
    args.record, args.record_max_mb = args.out, args.max_mb
    return cmd_run(args)


def _speed(text: str) -> float | None:
    """``realtime`` (1), ``max`` (None: as fast as the detector allows) or a factor."""
    if text == "realtime":
        return 1.0
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be realtime, max or a factor, got "
                                         f"{text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"speed must be above 0, got {text}")
    return value


def cmd_replay(args) -> int:
    import warnings

    from edge.detect.model import ModelError
    from edge.pipeline import summary_line
    from edge.sources.recording import RecordingError, RecordingTruncated
    from edge.tools.labelsets import LabelsetError
    from edge.tools.replay import (
        ReplayHub,
        ReplayRun,
        labelling_template,
        open_recording,
        recorded_config,
        truths_from_labels,
    )

    def say(text: str) -> None:
        print(f"edge: {text}", file=sys.stderr)
    warnings.simplefilter("always", RecordingTruncated)
    warnings.showwarning = lambda message, *rest: say(f"warning: {message}")
    models = args.model or [None]
    if len(models) > 2:
        say("--model: at most two models, compared side by side")
        return 2
    if args.report is not None:
        args.report.mkdir(parents=True, exist_ok=True)
    if not (args.recording / "manifest.json").is_file() and args.recording.exists():
        if args.labels or args.export_parcels or args.plc:
            say("--labels, --export-parcels and --plc are for recordings; a labelled set of "
                "images replays as parcels with its own labels")
            return 2
        return _replay_images(args, models, say)
    try:
        truths = truths_from_labels(args.labels) if args.labels else None
    except LabelsetError as exc:
        say(f"--labels: {exc}")
        return 2
    runs = []
    for k, model in enumerate(models):
        thumbnails = args.report / "parcels" / f"model{k + 1}" if args.report else None
        try:
            recording = open_recording(args.recording, log=say)
            config = recorded_config(recording, model)
            bar = _progress(len(recording.chunk_paths), "chunk") if args.quiet or \
                len(models) > 1 else None
            hub = ReplayHub(recording, config, speed=args.speed, thumbnails=thumbnails,
                            show=None if bar is not None else _print_replayed,
                            on_chunk=bar.update if bar is not None else None, truths=truths,
                            export=args.export_parcels if k == 0 else None, plc=args.plc)
        except (RecordingError, ModelError, ValueError, OSError) as exc:
            say(f"cannot replay {args.recording}: {exc}")
            return 2
        print(f"replaying {args.recording} ({len(recording.chunk_paths)} chunks) at "
              f"{'max' if args.speed is None else f'{args.speed:g}x'} speed; detector: "
              f"{hub.detector.name}; thresholds: {hub.policy.source}", flush=True)
        summary = hub.run()
        if bar is not None:
            bar.close()
        print(summary_line(summary) + f"; {summary['recorded_s']} s of belt in "
              f"{summary['duration_s']} s ({summary['speedup']}x)")
        runs.append(ReplayRun.of(hub, summary, thumbnails))
        if args.export_parcels and k == 0:
            template = labelling_template(args.export_parcels, list(hub.detector.classes))
            print(f"wrote the parcels' pictures and {template} (label them, then replay "
                  f"with --labels)")
    if args.summary:
        args.summary.write_text(json.dumps(runs[0].summary if len(runs) == 1 else
                                           [r.summary for r in runs], indent=1) + "\n")
    _write_report(args, runs)
    return 0


def _write_report(args, runs) -> None:
    """With ``--report OUT``: each run's detections (what calibrate --replay reads), then
    the report of them all."""
    if args.report is None:
        return
    from edge.tools.report import write_report
    for k, run in enumerate(runs, start=1):
        run.save(args.report / f"detections-model{k}.jsonl")
    write_report(args.report, runs, str(args.recording))
    print(f"wrote {args.report / 'report.html'} and {args.report / 'metrics.json'}")


def _progress(total: int, unit: str):
    from tqdm import tqdm
    return tqdm(total=total, desc="replay", unit=unit, mininterval=2, leave=False)


def _replay_images(args, models, say) -> int:
    """``edge replay`` on labelled images (COCO, VOC, YOLO): each image is a parcel."""
    from edge.config import load_config
    from edge.tools.calibrate import read_items
    from edge.tools.labelsets import LabelsetError
    from edge.tools.replay import replay_images

    try:
        items = read_items([args.recording])
    except LabelsetError as exc:
        say(f"cannot replay {args.recording}: not a recording (no manifest.json) nor a "
            f"labelled set: {exc}")
        return 2
    runs = []
    for k, model in enumerate(models):
        config = load_config(args.config)
        if model is not None:
            config = config.model_copy(update={"detector": config.detector.model_copy(
                update={"model": model})})
        thumbnails = args.report / "parcels" / f"model{k + 1}" if args.report else None
        run = replay_images(items, config, thumbnails, progress=True)
        threats = sum(bool(r.threat) for r in run.records)
        diverted = [r for r in run.records if r.action != "clear"]
        print(f"{run.model}: {len(run.records)} images as parcels, {len(diverted)} diverted; "
              f"{sum(bool(r.threat) for r in diverted)} of {threats} with threats")
        for skipped in run.summary["skipped"]:
            say(f"skipped: {skipped}")
        runs.append(run)
    _write_report(args, runs)
    return 0


def _print_replayed(parcel, verdict) -> None:
    truth = f"; truth: {', '.join(parcel.truth_labels) or 'none'}" \
        if parcel.truth is not None else ""
    found = f" ({verdict.reason})" if verdict.reason else ""
    print(f"parcel {parcel.id}: {verdict.action.value}{found}; {parcel.shape[1]} lines{truth}",
          flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description=__doc__)
    parser.add_argument("--config", type=Path, help="YAML config file (default: embedded demo)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the inspection pipeline")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--summary", type=Path, default=None, help="write a JSON summary here")
    p.add_argument("--no-dashboard", action="store_true", help="do not serve the dashboard "
                   "(the store still keeps every parcel)")
    p.add_argument("--fault", action="append", default=[], metavar="NAME[=VALUE]",
                   help="inject a fault (repeatable; as the faults: config section; "
                        "docs/pipeline.md lists them), e.g. --fault corrupt=0.4 "
                        "--fault plc-silent=1.5")
    p.add_argument("--record", type=Path, default=None, metavar="DIR",
                   help="record the scanner stream, photos and config into DIR as it runs "
                        "(docs/recording-format.md)")
    p.add_argument("--record-max-mb", type=float, default=None, metavar="MB",
                   help="stop recording (not inspecting) at this size")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("dashboard", help="serve the operators' dashboard over an existing "
                       "store (edge run serves it itself unless --no-dashboard)")
    p.add_argument("--store", type=Path, default=None, help="store folder (default: store.dir)")
    p.add_argument("--host", default=None, help="address to bind (default: dashboard.host, "
                   "127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: dashboard.port, 8000)")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("user", help="dashboard users: add, passwd (password from stdin), list")
    p.add_argument("action", choices=["add", "passwd", "list"])
    p.add_argument("name", nargs="?", default="")
    p.add_argument("--role", choices=["operator", "engineer", "admin"], default=None)
    p.add_argument("--store", type=Path, default=None, help="store folder (default: store.dir)")
    p.set_defaults(func=cmd_user)

    p = sub.add_parser("record", help="run the line and record its scanner stream (edge run "
                       "--record)")
    p.add_argument("--out", type=Path, required=True, help="recording folder (new or empty)")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--max-mb", type=float, default=None, help="stop recording at this size")
    p.add_argument("--summary", type=Path, default=None, help="write a JSON summary here")
    p.add_argument("--fault", action="append", default=[], metavar="NAME[=VALUE]",
                   help="inject a fault, as edge run --fault")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("replay", help="play a recording through the live loop's code")
    p.add_argument("recording", type=Path, help="a folder written by edge record")
    p.add_argument("--speed", type=_speed, default=None, help="realtime, max (default: as "
                   "fast as the detector allows) or a factor such as 2")
    p.add_argument("--model", type=Path, action="append", default=None,
                   help="an ONNX model in place of the recorded config's; twice: both, "
                        "compared in the report")
    p.add_argument("--report", type=Path, default=None, metavar="OUT",
                   help="write OUT/report.html, OUT/metrics.json and the detections "
                        "(OUT/detections-model1.jsonl, what calibrate thresholds --replay "
                        "reads)")
    p.add_argument("--summary", type=Path, default=None, help="write a JSON summary here")
    p.add_argument("--quiet", action="store_true", help="no line per parcel")
    p.add_argument("--export-parcels", type=Path, default=None, metavar="DIR",
                   help="write every parcel's rendering into DIR, named by the belt range it "
                        "was cut at, with DIR/labels-template.json (COCO) to label them")
    p.add_argument("--plc", action="store_true", help="command a simulated belt PLC over a "
                   "pseudo-terminal as the live run did its real one, and count what its "
                   "diverter does (needs --speed realtime)")
    p.add_argument("--labels", type=Path, default=None, metavar="FILE",
                   help="ground truth for the recording's parcels: a labelled set (COCO, VOC, "
                        "YOLO) of the pictures --export-parcels wrote; it replaces the truth "
                        "the recording carries")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("sim", help="write simulated parcels with COCO annotations")
    p.add_argument("--parcels", type=int, default=16)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=None, help="override scanner.seed")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("calibrate", help="scanner calibration")
    p.add_argument("what", choices=["flatfield", "thresholds"],
                   help="flatfield: dark and air tables from the source; thresholds: "
                        "per-class score thresholds from labelled scans")
    p.add_argument("--lines", type=int, default=512, help="flatfield: dark and air lines to "
                   "average")
    p.add_argument("--out", type=Path, default=None, help="default: <calibration_dir>/"
                   "flatfield.npz or thresholds.json")
    p.add_argument("--data", type=Path, nargs="+", default=[],
                   help="thresholds: labelled scans (COCO .json files, VOC or YOLO folders)")
    p.add_argument("--check", type=Path, nargs="+", default=[],
                   help="thresholds: held-out labelled scans to judge the chosen thresholds on")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--recall", type=_unit_interval, default=0.9,
                        help="thresholds: share of each class's objects to find (default 0.9)")
    target.add_argument("--target-pd", type=_unit_interval, default=None, metavar="SHARE",
                        help="thresholds: one threshold for every class, the highest that "
                             "diverts this share of the images holding a threat")
    target.add_argument("--target-far", type=_unit_interval, default=None, metavar="SHARE",
                        help="thresholds: one threshold for every class, the lowest that "
                             "diverts at most this share of the clear images")
    p.add_argument("--by-folder", action="store_true", help="thresholds: also judge the --check "
                   "images of each folder on their own (the simulator writes colour/ and grey/; "
                   "a scanner shows one of them)")
    p.add_argument("--replay", type=Path, default=None, metavar="OUT",
                   help="thresholds: from a replay's scored parcels (edge replay --report OUT; "
                        "its detections-model1.jsonl, or a detections file)")
    p.add_argument("--model", type=Path, default=None,
                   help="thresholds: ONNX model (default: detector.model)")
    p.add_argument("--verifier", default=None, metavar="FILE|none",
                   help="thresholds: second look that rescores the model's boxes, as the live "
                        "loop runs it (default: detector.verifier for a model of the "
                        "configured model's version; none: the model alone)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("bench", help="benchmarks")
    p.add_argument("what", choices=["sim", "post", "model", "pipeline", "faults", "store"])
    p.add_argument("--parcels", type=int, default=None, help="sim, model: parcels (default "
                   "20); store: records in the scratch store (default 100,000)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--model", type=Path, default=None, help="post: also time pre, session run "
                   "and post of this ONNX model on one parcel")
    p.add_argument("--image", type=Path, default=None, help="post: the parcel image to use "
                   "(default: the first simulated parcel with a threat)")
    p.add_argument("--speeds", type=float, nargs="+", default=None,
                   help="pipeline: belt speeds to try, mm/s (default 500 to 2500); faults: "
                        "(default 500 3000)")
    p.add_argument("--seconds", type=float, default=None, help="pipeline: run time per speed "
                   "(default 12); faults: per run (default 6)")
    p.add_argument("--store", choices=["on", "off", "both"], default="on",
                   help="pipeline: with the parcel store (in a scratch folder), without, or "
                        "both in turn to measure what it costs (default on)")
    p.add_argument("--repeats", type=int, default=1, help="pipeline: runs per speed (and per "
                   "store setting); the store's cost is the median over them")
    p.add_argument("--only", nargs="+", default=None, metavar="FAULT",
                   help="faults: these rows of the matrix only")
    p.add_argument("--models", type=Path, nargs="+", default=None, help="model: ONNX files to "
                   "time side by side (default: the shipped INT8 model and its FP32 export)")
    p.add_argument("--per-parcel", action="store_true", help="model: time whole simulated "
                   "parcels (--parcels of them: pre-processing, every tile, post-processing) "
                   "instead of one bare model input")
    p.add_argument("--verifier", nargs="+", default=None, metavar="FILE|none",
                   help="model --per-parcel: the second look each model is also timed with, "
                        "once for all or once per model (default: detector.verifier for a "
                        "model of the configured model's version, none for any other)")
    p.add_argument("--verify-at", type=_unit_interval, nargs="+", default=None,
                   metavar="SCORE", help="model --per-parcel: the score from which the second "
                   "look looks again, once for all or once per model (default: the lowest "
                   "threshold the live loop decides the pair with)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("detect", help="run the detector on image files (PNG, JPEG, TIFF) or "
                       "on the scans in folders")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                   help="an image file, or a folder: the scan files directly inside it "
                        "(not its subfolders), in name order")
    p.add_argument("--json", action="store_true", help="one JSON object per image and line")
    p.add_argument("--model", type=Path, default=None, help="ONNX model (default: "
                   "detector.model of the config)")
    p.add_argument("--verifier", default=None, metavar="FILE|none",
                   help="second look that rescores the model's boxes (default: "
                        "detector.verifier for a model of the configured model's version; "
                        "none: the model alone)")
    p.add_argument("--conf", type=_unit_interval, default=None, help="score threshold "
                   "(default: the thresholds the live loop decides with: the calibrated "
                   "table for this model, else detector.score_threshold)")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("evaluate", help="accuracy of models on labelled scans (COCO, VOC, "
                       "YOLO): AP50 per class, mAP50, mAP50:95")
    p.add_argument("models", nargs="*", type=Path, metavar="MODEL",
                   help="ONNX files, compared in one table (default: detector.model)")
    p.add_argument("--verifier", default=None, metavar="FILE|none",
                   help="second look that rescores each model's boxes (default: "
                        "detector.verifier for a model of the configured model's version, "
                        "none for any other; none: every model alone)")
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="labelled scans: COCO .json files, VOC or YOLO folders")
    p.add_argument("--map", action="append", default=[], metavar="FROM=TO",
                   help="rename a class of the labels (pistol=gun), or drop it (person=)")
    p.add_argument("--confusion", action="store_true",
                   help="also print what each labelled object was seen as (another class, or "
                        "missed) and the false alarms, at the score threshold --conf")
    p.add_argument("--conf", type=_unit_interval, default=None, help="score threshold of "
                   "the confusion table (default: detector.score_threshold); implies "
                   "--confusion")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("config", help="print the effective config")
    p.add_argument("--show", action="store_true", help="print it as YAML (the default)")
    p.add_argument("--schema", action="store_true", help="print its JSON schema instead")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
