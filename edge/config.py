"""One settings tree for the whole pipeline, loaded in one call.

Sources, strongest first: environment variables (``EDGE_SCANNER__BELT_SPEED_MM_S=600``),
then the YAML file given with ``--config``, then the defaults below, which are the embedded demo
(simulated scanner, simulated camera). Every model forbids unknown keys so a typo fails loudly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from edge.shipping import shipped_file


def _wants_number(annotation: Any) -> bool:
    """Whether lax validation would turn true/false into 1/0 for a field of this type."""
    if annotation in (int, float):
        return True
    args = get_args(annotation)
    return get_origin(annotation) in (Union, UnionType) and bool not in args and \
        any(map(_wants_number, args))


def _bool_for_number(value: Any, annotation: Any) -> bool:
    """Whether ``value`` holds true/false where ``annotation`` asks for a number."""
    if isinstance(value, bool):
        return _wants_number(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is tuple and isinstance(value, list | tuple):
        kinds = args[:1] * len(value) if args[-1:] == (Ellipsis,) else args
        return any(map(_bool_for_number, value, kinds))
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return any(_bool_for_number(item, args[1]) for item in value.values())
    return False


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Lax mode reads YAML's true as 1.0 (a belt at 1 mm/s). Strict mode would refuse it but
    # also the strings environment variables arrive as ("600"), so only booleans are refused.
    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        if _bool_for_number(value, cls.model_fields[info.field_name].annotation):
            raise PydanticCustomError("bool_for_number",
                                      "Input should be a number, not true or false")
        return value


def _type_or(default: str):
    """Discriminator that picks ``default`` when ``type`` is left out (so env overrides of a
    single field, or a file that sets only some fields, still validate)."""

    def pick(value) -> str:
        if isinstance(value, dict):
            return value.get("type", default)
        return getattr(value, "type", default)

    return Discriminator(pick)


class ScannerGeometry(Section):
    """What the live loop must know of any line-scan scanner, simulated or real."""

    belt_speed_mm_s: float = Field(500.0, gt=0, le=5000, description="Belt speed, mm/s.")
    n_pixels: int = Field(768, ge=64, le=4096, description="Detector pixels across the tunnel.")
    pitch_mm: float = Field(1.0, ge=0.25, le=4.0, description="Detector pixel pitch, mm; the "
                            "line rate is belt speed / pitch so pixels are square.")
    low_kev: float = Field(50.0, ge=20, le=160, description="Effective energy, low channel, keV.")
    high_kev: float = Field(80.0, ge=20, le=160, description="Effective energy, high channel.")
    encoder_counts_per_mm: float = Field(4.0, gt=0, le=1000, description="Belt encoder "
                                         "resolution, counts per mm of belt travel.")
    camera_offset_mm: float = Field(600.0, ge=0, le=20000, description="Top camera (and its "
                                    "photo-eye) distance upstream of the X-ray scan plane, mm.")

    @model_validator(mode="after")
    def _energies_ordered(self) -> ScannerGeometry:
        if self.high_kev <= self.low_kev:
            raise ValueError(f"high_kev ({self.high_kev}) must be above low_kev ({self.low_kev})")
        return self

    @property
    def line_rate_hz(self) -> float:
        return self.belt_speed_mm_s / self.pitch_mm


class SimScannerConfig(ScannerGeometry):
    """The physics simulator of a dual-energy line-scan parcel scanner (the embedded default)."""

    type: Literal["sim"] = "sim"
    seed: int = Field(0, description="Seed of the parcel stream; same seed, same stream.")
    realtime: bool = Field(True, description="Pace lines to the wall clock, as a real scanner.")
    block_lines: int = Field(64, ge=1, le=4096, description="Lines per LineBlock.")
    photons_low: float = Field(8000, gt=0, description="Mean photons per pixel per line "
                               "through air, low channel (sets quantum noise).")
    photons_high: float = Field(20000, gt=0, description="Same for the high channel.")
    air_counts: float = Field(45000, gt=0, le=65000, description="Mean ADC counts through air.")
    dark_counts: float = Field(600, ge=0, le=5000, description="Mean dark offset, ADC counts.")
    dark_spread: float = Field(80, ge=0, description="Pixel-to-pixel spread of the dark offset.")
    gain_spread: float = Field(0.08, ge=0, le=0.5, description="Relative pixel gain spread.")
    electronic_noise: float = Field(6.0, ge=0, description="Read noise, ADC counts rms.")
    dead_pixels: int = Field(3, ge=0, description="Detector pixels stuck at the dark level.")
    blur_px: float = Field(0.6, ge=0, le=5, description="Focal spot + crosstalk blur, sigma px.")
    speed_jitter: float = Field(0.02, ge=0, le=0.3, description="Relative belt speed wobble.")
    threat_share: float = Field(0.3, ge=0, le=1, description="Share of parcels with a threat.")
    gap_mm: tuple[float, float] = Field((250.0, 900.0), description="Range of gaps between "
                                        "parcels on the belt, mm.")
    touch_share: float = Field(0.05, ge=0, le=1, description="Share of parcels that touch the "
                               "one before them.")
    exclude_families: tuple[str, ...] = Field((), description="Object families never drawn "
                                              "(held out for generalisation tests).")

    @model_validator(mode="after")
    def _gaps_ordered(self) -> SimScannerConfig:
        if not 0 <= self.gap_mm[0] <= self.gap_mm[1]:
            raise ValueError(f"gap_mm must be (min, max) with 0 <= min <= max, got {self.gap_mm}")
        return self


class TcpScannerConfig(ScannerGeometry):
    """Raw line blocks and photo-eye events over TCP from the scanner's acquisition PC
    (framing in docs/scanner-tcp.md)."""

    type: Literal["tcp"] = "tcp"
    host: str = Field("127.0.0.1", description="The acquisition PC's address.")
    port: int = Field(5020, ge=1, le=65535, description="Its TCP port.")
    connect_timeout_s: float = Field(5.0, gt=0, le=600, description="Give up connecting "
                                     "(and raise) after this long, s.")
    read_wait_s: float = Field(0.5, gt=0, le=60, description="A read waits this long for "
                               "lines before the live loop looks up (to stop a timed run); "
                               "the stall alarm (pipeline.stall_s) judges the silence, s.")


ScannerConfig = Annotated[
    Annotated[SimScannerConfig, Tag("sim")] | Annotated[TcpScannerConfig, Tag("tcp")],
    _type_or("sim"),
]


class SimCameraConfig(Section):
    """A simulated top camera: a photo of the parcel's top with its printed label."""

    type: Literal["sim"] = "sim"
    width: int = Field(1920, ge=160, le=8192, description="Photo width, px.")
    height: int = Field(1080, ge=120, le=8192, description="Photo height, px.")
    field_mm: float = Field(1100.0, gt=0, description="Belt length the photo's width spans, mm.")
    code: Literal["qr", "code128"] = Field("qr", description="Symbology of the parcel ID on "
                                           "the labels: QR code or Code 128 barcode.")
    qr_module_mm: float = Field(2.0, ge=0.5, le=10, description="QR module size on the "
                                "label, mm; about 2 photo px per module or more reads well.")
    bar_module_mm: float = Field(1.0, ge=0.2, le=5, description="Code 128 narrow bar width on "
                                 "the label, mm; about 1.5 photo px per module or more reads.")
    blur_px: float = Field(0.8, ge=0, le=5, description="Largest defocus blur, sigma px; each "
                           "photo draws one between a third of this and this.")
    noise: float = Field(3.0, ge=0, le=40, description="Sensor noise, grey levels rms.")
    jpeg_quality: int = Field(75, ge=10, le=100, description="Lowest JPEG quality; each photo "
                              "draws one between this and 95.")


class CaptureCameraConfig(Section):
    """A real camera read through cv2.VideoCapture: device index, stream URL or video file."""

    type: Literal["capture"] = "capture"
    source: int | str = Field(0, description="Device index, stream URL or video file path.")


class NoCameraConfig(Section):
    """No top camera: parcels are named by their sequence number."""

    type: Literal["none"] = "none"


CameraConfig = Annotated[
    Annotated[SimCameraConfig, Tag("sim")] | Annotated[CaptureCameraConfig, Tag("capture")]
    | Annotated[NoCameraConfig, Tag("none")],
    _type_or("sim"),
]


class SegmentConfig(Section):
    """Cutting the corrected line stream into parcels."""

    threshold: float = Field(0.08, gt=0, description="Line is occupied when at least "
                             "min_pixels of its pixels exceed this high-energy "
                             "log-attenuation.")
    min_pixels: int = Field(4, ge=1, le=256, description="Pixels above threshold that make a "
                            "line occupied (the line's k-th highest pixel decides): fewer are "
                            "hot pixels; the two side walls of an empty box give 6 or more.")
    min_gap_mm: float = Field(40.0, ge=0, description="Shorter empty runs do not end a parcel.")
    min_length_mm: float = Field(60.0, ge=0, description="Shorter objects are ignored.")
    max_length_mm: float = Field(1600.0, gt=0, description="Longer runs are split.")
    margin_mm: float = Field(20.0, ge=0, description="Empty belt kept on each side of a parcel.")
    touch_jump_mm: float = Field(25.0, gt=0, description="Touching parcels are split where the "
                                 "parcel's extent across the tunnel jumps by more than this.")


class RenderConfig(Section):
    """The image operators and the model see."""

    mode: Literal["colour", "grey"] = Field("colour", description="Dual-energy pseudo-colour or "
                                            "single-energy grey.")


# The model that ships with the package (edge.shipping says where it is found).
SHIPPED_MODEL = shipped_file("lite0.int8.onnx")
SHIPPED_VERIFIER = shipped_file("verifier.int8.onnx")


DEFAULT_MAX_IMAGE_PIXELS = 100_000_000


class DetectorConfig(Section):
    """The ONNX detector and its runtime."""

    # A factory, not a value: the schema must not carry this checkout's absolute path.
    model: Path | None = Field(default_factory=lambda: SHIPPED_MODEL, description="ONNX model "
                               "file (default: the shipped model, models/lite0); none: no "
                               "detection.")
    verifier: Path | None = Field(default_factory=lambda: SHIPPED_VERIFIER, description="ONNX "
                                  "second look (edge.detect.verify) that rescores each box the "
                                  "model finds, from a crop of the full-resolution image "
                                  "(default: the shipped one with the shipped model, none with "
                                  "another: it is trained on its model's boxes); none: the "
                                  "model's scores stand.")
    providers: tuple[str, ...] = Field(("CPUExecutionProvider",), description="onnxruntime "
                                       "execution providers in order of preference (CUDA, "
                                       "TensorRT, OpenVINO when installed); CPU always last.")
    threads: int = Field(2, ge=1, le=64, description="Threads inside one inference.")
    score_threshold: float = Field(0.25, ge=0, le=1, description="Default per-class score "
                                   "threshold, before calibration tables.")
    iou_threshold: float = Field(0.5, ge=0, le=1, description="IoU above which NMS suppresses.")
    box_voting: bool = Field(False, description="Refine each kept box as the score-weighted "
                             "mean of the boxes NMS suppressed into it (weighted box fusion).")
    # OpenCV refuses images above 2**30 pixels on its own; real scans are 5-10 megapixels.
    max_image_pixels: int = Field(DEFAULT_MAX_IMAGE_PIXELS, ge=1_000_000, le=2**30,
                                  description="edge detect refuses image files whose header "
                                  "declares more pixels (width x height) than this, before "
                                  "decoding them: a small file can unpack to gigabytes.")

    @model_validator(mode="before")
    @classmethod
    def _verifier_belongs_to_its_model(cls, data):
        if isinstance(data, dict) and "verifier" not in data and "model" in data:
            model = data["model"]
            if model is None or SHIPPED_MODEL is None or \
                    Path(model).resolve() != SHIPPED_MODEL.resolve():
                data = {**data, "verifier": None}
        return data


Act = Literal["divert", "alarm", "ignore"]
PROHIBITED = ("gun", "gun_part", "ammunition", "knife", "blade", "shuriken", "baton", "explosive")


class DecisionConfig(Section):
    """From detections to one verdict per parcel."""

    actions: dict[str, Act] = Field(
        default_factory=lambda: dict.fromkeys(PROHIBITED, "divert"),
        description="Per class: divert (to manual inspection, with an operator alarm), alarm "
                    "(operator alert only, the parcel goes on) or ignore. Classes left out are "
                    "diverted: an unknown class fails closed.")
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Per-class score thresholds; beat calibration/"
        "thresholds.json, which beats detector.score_threshold.")


BLOCK_REGISTERS = 11  # encoder (4), lane, epoch (2), key (2), CRC-32 of the label (2)


class ModbusMap(Section):
    """Where the PLC expects release and divert commands and the watchdog (0-based Modbus
    addresses; docs/modbus.md)."""


    unit: int = Field(1, ge=1, le=247, title="Unit", description="Modbus slave id of the PLC.")
    mode: Literal["register", "coil"] = Field(
        "register", title="Handshake", description="register: the PLC's write response confirms "
        "a command; coil: the host then sets `coil_address` and the PLC confirms by clearing it.")
    address: int = Field(0, ge=0, le=65536 - BLOCK_REGISTERS, title="Command block",
                         description=f"First of the {BLOCK_REGISTERS} holding registers of the "
                         "command block.")
    coil_address: int = Field(0, ge=0, le=65535, title="Command coil",
                              description="Coil set per command in coil mode.")
    heartbeat_address: int = Field(16, ge=0, le=65535, title="Watchdog register",
                                   description="Holding register the host increments every "
                                   "heartbeat, and holds still while it fails closed; the PLC "
                                   "diverts every parcel while it does not change.")

    @model_validator(mode="after")
    def _watchdog_outside_block(self) -> ModbusMap:
        if self.address <= self.heartbeat_address < self.address + BLOCK_REGISTERS:
            raise ValueError(f"heartbeat_address {self.heartbeat_address} lies inside the "
                             f"command block {self.address}..{self.address + BLOCK_REGISTERS - 1}")
        return self


class PlcConfig(Section):
    """The belt PLC link and the belt geometry behind the scanner."""

    type: Literal["sim", "sim-modbus", "serial", "modbus", "none"] = Field(
        "sim", description="sim: a simulated belt PLC on a pseudo-terminal (the demo); "
        "sim-modbus: the same PLC behind Modbus RTU; serial: our framed protocol on `port`; "
        "modbus: Modbus RTU on `port`; none: no PLC (verdicts are only printed).")
    port: str = Field("", description="Serial port (or pyserial URL) for serial and modbus.")
    baudrate: int = Field(115_200, ge=1200, le=4_000_000)
    modbus: ModbusMap = Field(default_factory=ModbusMap, description="Register map for "
                              "type modbus (docs/modbus.md).")
    ack_timeout_s: float = Field(0.05, gt=0, le=5, description="A command unacknowledged "
                                 "this long is sent again, s.")
    max_attempts: int = Field(100, ge=1, le=1000, description="Sends of one command at "
                              "most; it expires anyway when its parcel reaches the diverter.")
    heartbeat_s: float = Field(0.1, gt=0, le=5, description="Heartbeat period, s.")
    silent_s: float = Field(0.5, gt=0, le=60, description="A PLC silent this long (no valid "
                            "frame) is an alarm: the host fails closed and reopens the port.")
    diverter_distance_mm: float = Field(
        3000.0, gt=0, description="Belt travel from the scan line to the diverter, mm; with the "
        "belt speed it sets every parcel's divert deadline.")
    margin_s: float = Field(0.3, ge=0, le=10, description="A verdict must be out this long "
                            "before the parcel reaches the diverter, or it is diverted "
                            "uninspected (fail closed).")


class PipelineConfig(Section):
    """Threads and queues of the live loop."""

    detector: Literal["model", "ground-truth"] = Field(
        "model", description="model: the ONNX detector; ground-truth: a stand-in that "
        "reports the simulator's own threat boxes (for testing the loop without a model).")
    queue: int = Field(8, ge=1, le=256, description="Parcels waiting for the detector; a parcel "
                       "that finds the queue full is diverted uninspected, never dropped.")
    workers: int = Field(1, ge=1, le=8, description="Detector threads.")
    failsafe_hold_s: float = Field(1.0, gt=0, le=600, description="After the last fault the "
                                   "host stays fail-closed this long (the PLC diverts every "
                                   "parcel), s.")
    stall_s: float = Field(1.0, gt=0, le=60, description="No line block from the scanner "
                           "for this long, or one detector call running this long, is an "
                           "alarm (a stall), s.")


class StoreConfig(Section):
    """The parcel store: every settled parcel's record in SQLite, its pictures beside it
    (docs/dashboard.md)."""

    enabled: bool = Field(True, description="Keep a record of every parcel; the dashboard "
                          "shows what the store holds.")
    dir: Path = Field(Path("var/store"), description="Folder of the store: edge.db and "
                      "images/.")
    pictures: Literal["all", "alerts", "none"] = Field(
        "all", description="Whose pictures to keep: every parcel's, alerts' only, or none.")
    keep_days: float = Field(90.0, gt=0, description="Records older than this are removed "
                             "(confirmed threats are kept), days.")
    max_picture_gb: float = Field(20.0, gt=0, description="Pictures beyond this total are "
                                  "removed, oldest first (confirmed threats' are kept), GB.")
    weapon_classes: tuple[str, ...] = Field(
        PROHIBITED, description="Classes whose alerts the dashboard marks as weapons, with a "
        "sound cue.")


class DashboardConfig(Section):
    """The operators' web dashboard, served from the store."""

    enabled: bool = Field(True, description="edge run serves the dashboard (unless "
                          "--no-dashboard).")
    host: str = Field("127.0.0.1", description="Address to bind; the local machine only "
                      "unless set.")
    port: int = Field(8000, ge=1, le=65535)
    secure_cookies: bool = Field(False, description="Mark session cookies Secure (when "
                                 "served over HTTPS behind a proxy).")
    zone: str | None = Field(None, description="The hub's IANA time zone for the times "
                             "shown (for example Asia/Ho_Chi_Minh); unset, the machine's own.")

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        if zone is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {zone!r} (an IANA name such as "
                                 "Asia/Ho_Chi_Minh)") from None
        return zone


# Faults injected into the simulated PLC (the rest are the host's own: labels, camera,
# scanner, encoder, detector, a host restart).
SIM_PLC_FAULTS = {"noise", "corrupt", "drop_acks", "ack_delay", "nak_busy", "plc_silent",
                  "port_loss", "modbus_timeout"}


class FaultsConfig(Section):
    """Faults to inject (all off by default). Shares in [0, 1]; durations in seconds."""

    at_s: float = Field(2.0, ge=0, description="When the timed faults (durations) begin, s "
                        "after the start of the run.")
    noise: float = Field(0.0, ge=0, le=1, description="Share of PLC frames preceded by line "
                         "garbage with a stray STX.")
    corrupt: float = Field(0.0, ge=0, le=1, description="Share of host frames of any type "
                           "lost on the wire (a failed CRC).")
    drop_acks: float = Field(0.0, ge=0, le=1, description="Share of commands the PLC applies "
                             "without acknowledging.")
    ack_delay: float = Field(0.0, ge=0, le=5, description="The PLC answers this late, s.")
    nak_busy: float = Field(0.0, ge=0, lt=1, description="Share of commands the PLC refuses "
                            "as busy (the host resends them).")
    plc_silent: float = Field(0.0, ge=0, le=600, description="The PLC's serial side goes deaf "
                              "and mute this long, its port present, s.")
    port_loss: float = Field(0.0, ge=0, le=600, description="The PLC's port vanishes this "
                             "long, s.")
    plc_restart_memory: bool = Field(False, description="The host restarts at at_s (a new "
                                     "session, keys from 1 again) while the PLC keeps its "
                                     "memory of the old session's commands.")
    long_label: float = Field(0.0, ge=0, le=1, description="Share of labels read with 22 "
                              "more digits in front (an IMpb-length tracking number).")
    non_ascii_label: float = Field(0.0, ge=0, le=1, description="Share of labels read with a "
                                   "non-ASCII character in front.")
    unreadable_label: float = Field(0.0, ge=0, le=1, description="Share of labels that cannot "
                                    "be read.")
    camera_down: float = Field(0.0, ge=0, le=600, description="The top camera gives no photo "
                               "this long, s.")
    scanner_stall: float = Field(0.0, ge=0, le=600, description="The scanner delivers no "
                                 "lines this long while the belt runs on (those lines are "
                                 "lost), s.")
    encoder_glitch: float = Field(0.0, ge=0, le=10_000, description="One line block's "
                                  "encoder counts jump this far ahead, mm.")
    detector_stall: float = Field(0.0, ge=0, le=600, description="One detector call hangs "
                                  "this long, s.")
    detector_crash: float = Field(0.0, ge=0, le=600, description="Detector threads die of an "
                                  "exception on every call for this long, s.")
    modbus_timeout: float = Field(0.0, ge=0, le=600, description="The Modbus PLC does not "
                                  "answer this long, s.")

    @property
    def active(self) -> list[str]:
        """Names (hyphenated) of the faults switched on."""
        return [name.replace("_", "-") for name, value in self
                if name != "at_s" and value]


class EdgeConfig(BaseSettings):
    """The root of the settings tree."""

    model_config = SettingsConfigDict(env_prefix="EDGE_", env_nested_delimiter="__",
                                      extra="forbid", frozen=True)

    scanner: ScannerConfig = Field(default_factory=SimScannerConfig)
    camera: CameraConfig = Field(default_factory=SimCameraConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    decision: DecisionConfig = Field(default_factory=DecisionConfig)
    plc: PlcConfig = Field(default_factory=PlcConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    faults: FaultsConfig = Field(default_factory=FaultsConfig, description="Faults to "
                                 "inject, for drills and soak tests (all off by default).")
    store: StoreConfig = Field(default_factory=StoreConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    calibration_dir: Path = Field(Path("calibration"), description="Scanner calibration tables.")

    @model_validator(mode="after")
    def _faults_fit_the_plc(self) -> EdgeConfig:
        """A fault of the PLC's side can only be injected into a simulated PLC of that kind."""
        faults, plc = self.faults, self.plc.type
        allowed = {"sim": SIM_PLC_FAULTS - {"modbus_timeout"},
                   "sim-modbus": {"modbus_timeout", "drop_acks", "nak_busy"}}.get(plc, set())
        wrong = sorted(f for f in SIM_PLC_FAULTS - allowed if getattr(faults, f))
        if wrong:
            raise ValueError(f"faults {', '.join(wrong)} need a simulated PLC that has them "
                             f"(plc.type sim, or sim-modbus for modbus_timeout, drop_acks, "
                             f"nak_busy); plc.type is {plc}")
        return self

    @model_validator(mode="after")
    def _simulated_parts_need_the_simulated_belt(self) -> EdgeConfig:
        """A simulated camera photographs, and a simulated PLC diverts, the simulated belt's
        parcels: with a real scanner they have nothing to work on."""
        if self.scanner.type != "sim":
            wrong = [f"camera.type {self.camera.type}"] if self.camera.type == "sim" else []
            if self.plc.type in ("sim", "sim-modbus"):
                wrong.append(f"plc.type {self.plc.type}")
            if wrong:
                raise ValueError(f"{' and '.join(wrong)} need scanner.type sim (scanner.type "
                                 f"is {self.scanner.type}): use camera.type capture or none, "
                                 "and plc.type serial, modbus or none")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource):
        # Environment beats the file, which arrives as init kwargs.
        return _NamingEnvSource(settings_cls), init_settings


class _EnvJsonError(ValueError):
    """An environment variable that must hold JSON and does not; the message names it."""


class _NamingEnvSource(EnvSettingsSource):
    """The environment, whose undecodable JSON values name their variable and field.

    Lists, tables and whole sections (``EDGE_SCANNER__GAP_MM='[200, 800]'``) must be JSON; the
    stock source then reports only the section ("scanner"), not the variable.
    """

    def _field_is_complex(self, field: FieldInfo) -> tuple[bool, bool]:
        # A section chosen by ``type`` is a union of models: the stock source lets its
        # undecodable JSON through as a bare string, which then fails with a message that
        # names neither the variable nor the remedy.
        is_complex, allow_parse_failure = super()._field_is_complex(field)
        args = get_args(field.annotation) if get_origin(field.annotation) in (Union, UnionType) \
            else ()
        if is_complex and args and all(isinstance(a, type) and issubclass(a, BaseModel)
                                       for a in map(_model_of, args)):
            return True, False
        return is_complex, allow_parse_failure

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError as exc:
            name = _env_name_holding(self.env_vars, field_name, value)
            default = field.get_default(call_default_factory=True) if field else None
            raise _EnvJsonError(f"environment variable {name} ({_field_of_env(name)}) is not "
                                f"valid JSON (got {value!r}): {exc}; "
                                f"{_json_hint(name, default)}") from None


def _model_of(annotation: Any) -> Any:
    """``Annotated[Model, Tag(...)]`` -> ``Model``."""
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _env_name_holding(env_vars: Mapping[str, str | None], key: str, value: str) -> str:
    """The EDGE_ variable that sets ``key`` to ``value``, upper-cased as the docs write it."""
    prefix, key = "edge_", key.lower()
    for name, held in env_vars.items():
        lowered = name.lower()
        if held == value and lowered.startswith(prefix) and \
                lowered.removeprefix(prefix).split("__")[-1] == key:
            return name.upper()
    return f"EDGE_...{key.upper()}"


def _field_of_env(name: str) -> str:
    """The dotted field an EDGE_ variable sets: EDGE_SCANNER__GAP_MM is scanner.gap_mm."""
    return ".".join(name.lower().removeprefix("edge_").split("__"))


def _json_hint(name: str, default: Any) -> str:
    if isinstance(default, BaseModel):
        return f"give the section as a JSON object, or one field at a time as {name}__<FIELD>"
    if isinstance(default, list | tuple):
        return f"give a JSON list such as {json.dumps(default)}"
    if isinstance(default, dict):
        return f"give a JSON object such as {json.dumps(default or {'name': 1})}"
    return "give it as JSON"


class ConfigError(Exception):
    """A config that cannot be used; the message names the field and the reason."""


def _env_names_setting(loc: tuple, environ: Mapping[str, str]) -> list[str]:
    """The EDGE_ variables that set the field at ``loc`` or a section around it.

    ``loc`` may hold union tags the variable names leave out (scanner.sim.gap_mm is set by
    EDGE_SCANNER__GAP_MM), so a variable matches when its parts appear in ``loc`` in order.
    """
    parts = [str(part).lower() for part in loc]
    names = []
    for name in environ:
        if not name.lower().startswith("edge_"):
            continue
        wanted = name.lower().removeprefix("edge_").split("__")
        rest = iter(parts)
        if wanted[:1] == parts[:1] and all(part in rest for part in wanted):
            names.append(name)
    return sorted(names)


def _tags(annotation: Any) -> set[str]:
    """The union-member tags anywhere in ``annotation``."""
    found = {m.tag for m in getattr(annotation, "__metadata__", ()) if isinstance(m, Tag)}
    return found.union(*map(_tags, get_args(annotation)))


def _union_tags(model: type[BaseModel]) -> dict[str, set[str]]:
    """Field -> the tags of its members, for each tagged-union field of ``model``."""
    return {name: _tags(field.annotation).union(m.tag for m in field.metadata
                                                 if isinstance(m, Tag))
            for name, field in model.model_fields.items()}


def _as_written(loc: tuple) -> tuple:
    """pydantic puts the union member in the path (``scanner.sim.belt_speed_mm_s``); a user
    wrote, and looks for, ``scanner.belt_speed_mm_s``."""
    if len(loc) > 1 and loc[1] in _union_tags(EdgeConfig).get(loc[0], ()):
        return (loc[0], *loc[2:])
    return loc


def format_validation_error(error: ValidationError,
                            environ: Mapping[str, str] | None = None) -> str:
    """One indented line per error: the dotted field, the reason, the value, its variable."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in _as_written(item["loc"])) or "(root)"
        got = f" (got {item['input']!r})" if item["type"] != "missing" and "input" in item \
            and not isinstance(item["input"], dict) else ""
        names = _env_names_setting(item["loc"], environ or {})
        origin = f" (from {', '.join(names)})" if names else ""
        lines.append(f"  {where}: {item['msg']}{got}{origin}")
    return "\n".join(lines)


def _read_config_file(path: Path) -> dict:
    """The YAML mapping in ``path``; every way it can fail is a ConfigError naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte "
                          f"0x{exc.object[exc.start]:02x} at offset {exc.start}); it must be "
                          "YAML") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at its top level, "
                          f"got {type(data).__name__}")
    return data


def load_config(path: Path | str | None = None) -> EdgeConfig:
    """Load the settings tree from an optional YAML file plus the environment."""
    data = _read_config_file(Path(path)) if path is not None else {}
    try:
        return EdgeConfig(**data)
    except ValidationError as exc:
        source = f"config file {path}" if path else "config"
        detail = format_validation_error(exc, os.environ)
        if exc.error_count() == 1:   # one error, one line
            raise ConfigError(f"{source}: {detail.strip()}") from None
        raise ConfigError(f"{source} is invalid:\n{detail}") from None
    except SettingsError as exc:
        cause = exc.__cause__
        raise ConfigError(str(cause) if isinstance(cause, _EnvJsonError)
                          else f"environment: {exc}: {cause}") from None


def dump_config(config: EdgeConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
