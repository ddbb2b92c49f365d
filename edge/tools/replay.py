"""Replay a recording through the live loop: the same ``Hub``, the recording as its scanner.

``ReplayHub`` plays a recording (``edge.sources.recording``) into the live loop's code, with
the recorded photos as its camera: every parcel is cut, corrected, detected and decided as it
was live. By default there is no PLC; at real time the replay can command a simulated belt
PLC over a pseudo-terminal (``plc=True``), which then diverts or passes each parcel as the
photo-eye events bring it to the diverter. Where the recording carries ground truth (a
simulated line's, or labels given for it), each parcel gets its truth back by the encoder
range it was cut at, and the summary scores the verdicts (or, with the PLC, what its diverter
did): threat parcels, missed threats (a threat parcel not diverted), false diverts.

With the ONNX model, ``ScoringDetector`` keeps every parcel's detections down to a low floor
(``FLOOR``) beside the verdict, so a replay can also be scored as a labelled set (AP per
class, curves of probability of detection against false alarms) and calibrated from
(``edge calibrate thresholds --replay``), while the live loop's decision sees exactly what it
saw live: the detections at the detector's own threshold.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from edge.config import EdgeConfig
from edge.decide import Policy
from edge.detect.decode import passing
from edge.detect.files import ScanReadError, image_size, read_scan
from edge.detect.model import detect_with
from edge.detect.parcel import ModelDetector
from edge.detect.pre import as_bgr8
from edge.detect.verify import FLOOR as VERIFY_FLOOR
from edge.imaging.segment import Segment
from edge.interfaces import Detector
from edge.pipeline import Hub, new_link
from edge.sources.recording import (
    RecordedCamera,
    Recording,
    RecordingSource,
    RecordingTruncated,
    TruthRecord,
)
from edge.tools.calibrate import FLOOR, ScoredSet
from edge.tools.labelsets import LabelledImage, LabelsetError, read_labelset
from edge.types import Action, BeltEvent, Detections, Parcel, Verdict

THUMBNAIL_SCALE = 0.5   # parcel renderings kept for the report's galleries
# An exported parcel's file name carries the encoder range it was cut at: a replay of the same
# recording cuts the same parcels, so labels drawn on the picture find their parcel again.
PARCEL_FILE = "parcel-{seq:06d}_enc{start}-{end}.png"
PARCEL_STEM = re.compile(r"_enc(-?\d+)-(-?\d+)$")


@dataclass
class ParcelRecord:
    """What a replay keeps of one parcel for its report."""

    seq: int
    id: str
    lines: int
    action: str
    reason: str
    threat: bool | None        # None: the recording carries no truth for it
    latency_s: float | None    # last line to verdict
    found: Detections          # down to FLOOR, in the parcel's pixels
    truth: Detections | None   # class ids index the detector's classes


class ScoringDetector:
    """The model as the live loop calls it, keeping every parcel's detections down to
    ``FLOOR`` (and, with ``thumbnails``, a half-size rendering of the parcel as JPEG).

    The live loop gets the detections at or above the detector's own threshold, as live.
    Kept scores and classes do not depend on the floor: greedy NMS suppresses a box only by
    a higher-scoring one, and box voting moves boxes, never scores."""

    def __init__(self, model: ModelDetector, thumbnails: Path | None = None,
                 export: Path | None = None):
        self.model, self.thumbnails, self.export = model, thumbnails, export
        self.name, self.version, self.classes = model.name, model.version, model.classes
        self.live_floor = np.asarray(model.thresholds, np.float32)
        self.found: dict[int, Detections] = {}
        for folder in (thumbnails, export):
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, parcel: Parcel) -> Detections:
        image = self.model.render(parcel)
        found = detect_with(self.model.detector.raw, self.model.detector.info, image, FLOOR,
                            self.model.iou, self.model.vote)
        if self.model.verifier is not None:
            found = self._second_look(image, found)
        self.found[parcel.seq] = found
        if self.thumbnails is not None:
            save_thumbnail(image, self.thumbnails / f"{parcel.seq}.jpg")
        if self.export is not None:
            start, end = parcel.encoder_range
            cv2.imwrite(str(self.export / PARCEL_FILE.format(seq=parcel.seq, start=start,
                                                             end=end)), image)
        return at_floor(found, self.live_floor)


    def _second_look(self, image: np.ndarray, found: Detections) -> Detections:
        """Rescored as live: the boxes the live loop verifies, in one call as it makes it,
        then the others down to the second look's floor; boxes under that floor are
        dropped (edge.detect.verify.FLOOR)."""
        live = passing(found, self.live_floor, len(self.classes))
        rest = ~live & (found.score >= VERIFY_FLOOR)
        score = found.score.copy()
        for part in (live, rest):
            if part.any():
                score[part] = self.model.verifier.rescore(image, found[part]).score
        return Detections(found.xyxy, score, found.class_id)[live | rest]


def labelling_template(folder: Path, classes: list[str]) -> Path:
    """``folder/labels-template.json``: a COCO file naming every exported parcel picture in
    ``folder`` and the model's classes, with no boxes yet, for a labelling tool to open."""
    images = []
    for k, path in enumerate(sorted(folder.glob("parcel-*.png")), start=1):
        width, height = image_size(path.read_bytes())   # from the header: nothing decoded
        images.append({"id": k, "file_name": path.name, "width": width, "height": height})
    template = {"images": images, "annotations": [],
                "categories": [{"id": k, "name": c} for k, c in enumerate(classes, start=1)]}
    out = folder / "labels-template.json"
    out.write_text(json.dumps(template, indent=1) + "\n")
    return out


def truths_from_labels(path: Path | str) -> list[TruthRecord]:
    """The ground truth of a recording's parcels from a labelled set (COCO, VOC or YOLO) of
    the pictures ``edge replay --export-parcels`` wrote: each picture's name gives the encoder
    range of its parcel, its boxes are in the parcel's pixels. A picture with no box is a
    parcel known to be clear; a parcel with no picture in the set stays unknown."""
    truths = []
    for item in read_labelset(path):
        match = PARCEL_STEM.search(item.path.stem)
        if match is None:
            raise LabelsetError(f"{item.path}: not a parcel picture of edge replay "
                                f"--export-parcels (named like "
                                f"{PARCEL_FILE.format(seq=1, start=0, end=4000)}): its name "
                                "does not say which parcel it shows")
        truths.append(TruthRecord((int(match[1]), int(match[2])), item.labels, item.boxes))
    return truths


def save_thumbnail(image: np.ndarray, path: Path) -> None:
    """A parcel's rendering at ``THUMBNAIL_SCALE``, as JPEG, for the report's galleries."""
    small = cv2.resize(image, None, fx=THUMBNAIL_SCALE, fy=THUMBNAIL_SCALE,
                       interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), small, [cv2.IMWRITE_JPEG_QUALITY, 85])


def at_floor(found: Detections, floor: np.ndarray | float) -> Detections:
    """The detections at or above ``floor`` (one for all classes, or one per class)."""
    floor = np.asarray(floor, np.float32)
    if not len(found):
        return found
    return found[found.score >= (floor if floor.ndim == 0 else floor[found.class_id])]


def recorded_config(recording: Recording, model: Path | None = None) -> EdgeConfig:
    """The config in force when ``recording`` was made, for a replay: no PLC (``ReplayHub``
    adds a simulated one when asked), no faults, and ``model``
    in place of the recorded detector when given."""
    raw = yaml.safe_load((recording.folder / "config.yaml").read_text()) or {}
    raw["plc"] = {**raw.get("plc", {}), "type": "none"}
    raw["faults"] = {}   # a replay plays what was recorded, faults and all, adding none
    if model is not None:
        raw.setdefault("detector", {})["model"] = str(model)
        raw.setdefault("pipeline", {})["detector"] = "model"
    return EdgeConfig(**raw)


class ReplayHub(Hub):
    """The live loop on a recording (module docstring). ``speed``: 1 real time, X times as
    fast, None as fast as the detector allows (the loop then waits for the detector rather
    than divert uninspected)."""

    def __init__(self, recording: Recording, config: EdgeConfig | None = None,
                 speed: float | None = None, detector: Detector | None = None,
                 log: Callable[[str], None] = print,
                 show: Callable[[Parcel, Verdict], None] | None = None,
                 thumbnails: Path | None = None, on_chunk: Callable[[], None] | None = None,
                 truths: list[TruthRecord] | None = None, export: Path | None = None,
                 plc: bool = False):
        config = config or recorded_config(recording)
        source = RecordingSource(recording, speed, on_chunk)
        self.plc, link = None, None
        if plc:
            # Deadlines come from the recorded belt speed: only a belt played at that speed
            # brings parcels to the diverter when the live run's commands would be there.
            if speed != 1.0:
                raise ValueError("a simulated PLC needs the belt played at real time "
                                 "(--speed realtime): faster, parcels would reach the "
                                 "diverter before the live run's commands could")
            from simulator.plc import SimPlc
            config = config.model_copy(update={"plc": config.plc.model_copy(
                update={"type": "sim"})})
            self.plc = SimPlc(source.encoder_now,
                              counts_per_mm=config.scanner.encoder_counts_per_mm,
                              heartbeat_s=config.plc.heartbeat_s).start()
            link = new_link(config, self.plc.path)
        self.belt_edges: dict[str, int] = {}   # photo-eye event -> its edge at the diverter
        # Labels given for the recording's parcels take the place of the truth it carries.
        self.truths = {t.encoder: t for t in (recording.truths() if truths is None
                                              else truths)}
        self.threat_seqs: set[int] = set()
        self.diverted_seqs: set[int] = set()
        self.records: list[ParcelRecord] = []
        detector = detector or ScoringDetector(ModelDetector(config), thumbnails, export)
        user_show = show

        def scored(parcel: Parcel, verdict: Verdict) -> None:
            if verdict.action != Action.CLEAR:
                self.diverted_seqs.add(parcel.seq)
            self._keep(parcel, verdict)
            if user_show is not None:
                user_show(parcel, verdict)
        super().__init__(config, source, recording.flat(), detector,
                         camera=RecordedCamera(recording), link=link, log=log, show=scored,
                         wait_for_detector=speed is None)

    def _keep(self, parcel: Parcel, verdict: Verdict) -> None:
        found = self.detector.found.pop(parcel.seq, None) \
            if isinstance(self.detector, ScoringDetector) else None
        entry = self.ledger.entries.get(parcel.seq)
        latency = entry.settled_at - entry.last_line_t \
            if entry is not None and entry.settled_at is not None else None
        known = parcel.encoder_range in self.truths
        self.records.append(ParcelRecord(
            parcel.seq, parcel.id, int(parcel.shape[1]), verdict.action.value, verdict.reason,
            bool(parcel.truth_labels) if known else None, latency,
            found if found is not None else verdict.detections,
            parcel.truth if known else None))

    def parcel_cut(self, parcel: Parcel, segment: Segment) -> None:
        truth = self.truths.get(parcel.encoder_range)
        if truth is None:
            return
        classes = list(self.detector.classes)
        known = [i for i, label in enumerate(truth.labels) if label in classes]
        parcel.truth = Detections(truth.boxes[known], np.ones(len(known)),
                                  [classes.index(truth.labels[i]) for i in known])
        parcel.truth_labels = list(truth.labels)
        if truth.labels:
            self.threat_seqs.add(parcel.seq)

    def belt_event(self, event: BeltEvent) -> None:
        """With a simulated PLC: the photo-eye tells it where the parcel's edge will be."""
        if self.plc is None:
            return
        travel = self.config.scanner.camera_offset_mm + self.config.plc.diverter_distance_mm
        name = f"edge@{event.encoder}"
        self.belt_edges[name] = int(event.encoder + travel * self.counts_per_mm)
        self.plc.expect(name, self.belt_edges[name])

    def belt_clear(self) -> bool:
        if self.plc is None:
            return True
        outcomes = self.plc.outcomes()
        return all(name in outcomes for name in self.belt_edges)

    def run(self, duration_s: float | None = None) -> dict:
        try:
            return super().run(duration_s)
        finally:
            if self.plc is not None:
                self.plc.stop()

    def _diverter_outcomes(self) -> dict[int, str]:
        """Parcel seq -> what the simulated diverter did with it ("diverted" or "passed").
        A parcel is the photo-eye event whose edge at the diverter is where its command put
        it (both are its leading edge there, give or take the segmentation's margin)."""
        outcomes = self.plc.outcomes()
        tolerance = int(self.config.segment.margin_mm * 2 * self.counts_per_mm)
        found = {}
        for entry in self.ledger.snapshot():
            name = min(self.belt_edges, default=None,
                       key=lambda n: abs(self.belt_edges[n] - entry.divert_encoder))
            if name is not None and name in outcomes and \
                    abs(self.belt_edges[name] - entry.divert_encoder) <= tolerance:
                found[entry.seq] = outcomes[name]
        return found

    def summary(self, elapsed_s: float) -> dict:
        """The hub's summary; with ground truth, the verdicts scored against it (what the
        simulated diverter did, with a PLC; what the verdicts divert, without)."""
        out = super().summary(elapsed_s)
        diverted = self.diverted_seqs
        if self.plc is not None:
            outcomes = self._diverter_outcomes()
            diverted = {seq for seq, what in outcomes.items() if what == "diverted"}
            out["plc"]["sim_plc"] = self.plc.stats.report()
            out["diverter_seen"] = len(outcomes)
        out["diverted"] = len(diverted)
        source = self.scanner
        out["recorded_s"] = round(source.played_s, 2)   # belt time played
        out["speedup"] = round(source.played_s / max(elapsed_s, 1e-9), 2)
        if self.truths:
            out.update({"threat_parcels": len(self.threat_seqs),
                        "missed_threats": len(self.threat_seqs - diverted),
                        "false_diverts": len(diverted - self.threat_seqs)})
        return out


def open_recording(folder: Path | str, log: Callable[[str], None] = print) -> Recording:
    """The recording at ``folder``; what is lost of it (cut off, a chunk unreadable) is said
    through ``log`` as it is found, and replay goes on with the rest."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RecordingTruncated)
        recording = Recording(folder)
    for warning in caught:
        log(f"warning: {warning.message}")
    return recording


@dataclass
class ReplayRun:
    """One model's replay of one recording: what its report and threshold calibration need."""

    model: str                     # the detector's name (file and version)
    version: str | None
    classes: tuple[str, ...]
    thresholds: dict[str, float]   # per class, as the policy applied them
    threshold_source: str
    records: list[ParcelRecord]
    summary: dict
    thumbnails: Path | None        # <seq>.jpg renderings at THUMBNAIL_SCALE

    @classmethod
    def of(cls, hub: ReplayHub, summary: dict, thumbnails: Path | None = None) -> ReplayRun:
        policy = hub.policy
        return cls(hub.detector.name, hub.detector.version, tuple(hub.detector.classes),
                   dict(zip(policy.classes, map(float, policy.thresholds), strict=True)),
                   policy.source, sorted(hub.records, key=lambda r: r.seq), summary,
                   thumbnails)

    def scored_set(self) -> ScoredSet:
        """The parcels with truth as a labelled set: detections down to the floor against
        truth (what AP and threshold calibration need)."""
        scored = ScoredSet(self.classes)
        for record in self.records:
            if record.truth is not None:
                scored.acc.add(record.found, record.truth)
                scored.images.append((record.found, record.truth))
        return scored

    def save(self, path: Path) -> None:
        """``detections.jsonl``: a header line, then one line per parcel."""
        def boxes(d: Detections | None):
            return None if d is None else {"xyxy": np.round(d.xyxy, 2).tolist(),
                                           "score": np.round(d.score, 5).tolist(),
                                           "class": d.class_id.tolist()}
        with open(path, "w") as f:
            f.write(json.dumps({"model": self.model, "version": self.version,
                                "classes": list(self.classes), "thresholds": self.thresholds,
                                "threshold_source": self.threshold_source}) + "\n")
            for r in self.records:
                f.write(json.dumps({"seq": r.seq, "id": r.id, "lines": r.lines,
                                    "action": r.action, "reason": r.reason, "threat": r.threat,
                                    "latency_s": r.latency_s, "found": boxes(r.found),
                                    "truth": boxes(r.truth)}) + "\n")

    @classmethod
    def load(cls, path: Path) -> ReplayRun:
        """A run saved by ``save`` (its summary and thumbnails are not saved there)."""
        def boxes(d):
            if d is None:
                return None
            return Detections(np.asarray(d["xyxy"], np.float32).reshape(-1, 4), d["score"],
                              d["class"])
        try:
            lines = Path(path).read_text().splitlines()
            head = json.loads(lines[0])
            records = [ParcelRecord(r["seq"], r["id"], r["lines"], r["action"], r["reason"],
                                    r["threat"], r["latency_s"], boxes(r["found"]),
                                    boxes(r["truth"]))
                       for r in map(json.loads, lines[1:])]
            return cls(head["model"], head["version"], tuple(head["classes"]),
                       head["thresholds"], head["threshold_source"], records, {}, None)
        except (OSError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path} is not a replay's detections file: {exc!r}") from None


def replay_images(items: list[LabelledImage], config: EdgeConfig,
                  thumbnails: Path | None = None, progress: bool = False) -> ReplayRun:
    """Labelled images (COCO, VOC, YOLO) replayed as parcels: each image is one parcel's
    rendering, detected and decided as the live loop decides, and scored against its labels.
    No stream, so no segmentation, deadlines or latency."""
    model = ModelDetector(config)
    policy = Policy.from_config(config, model.classes, model.version)
    index = {name: k for k, name in enumerate(model.classes)}
    if thumbnails is not None:
        thumbnails.mkdir(parents=True, exist_ok=True)
    records, skipped = [], []
    if progress:
        from tqdm import tqdm
        items = tqdm(items, desc="replay", unit="image", mininterval=2)
    for seq, item in enumerate(items, start=1):
        try:
            image = read_scan(item.path, config.detector.max_image_pixels)
        except ScanReadError as exc:
            skipped.append(str(exc))
            continue
        found = detect_with(model.detector.raw, model.detector.info, image, FLOOR, model.iou,
                            model.vote)
        live = at_floor(found, model.thresholds)
        verdict = policy.decide(item.path.name, live)
        known = [i for i, label in enumerate(item.labels) if label in index]
        truth = Detections(item.boxes[known], np.ones(len(known)),
                           [index[item.labels[i]] for i in known])
        if thumbnails is not None:
            save_thumbnail(as_bgr8(image), thumbnails / f"{seq}.jpg")
        records.append(ParcelRecord(seq, item.path.name, int(image.shape[1]),
                                    verdict.action.value, verdict.reason, bool(item.labels),
                                    None, found, truth))
    summary = {"parcels": len(records), "skipped": skipped,
               "uninspected": 0, "detector": model.name}
    return ReplayRun(model.name, model.version, tuple(model.classes),
                     dict(zip(policy.classes, map(float, policy.thresholds), strict=True)),
                     policy.source, records, summary, thumbnails)
