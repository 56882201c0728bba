"""Resting 12-lead ECG (12-Lead ECG IOD, PS3.3 A.34.3) made from a moving heart vector.

Limb leads come from one frontal-plane vector through Einthoven's and Goldberger's
relations, so III = II - I and aVR + aVL + aVF = 0 hold as on a real recording.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import TwelveLeadECGWaveformStorage

from .common import DEMO_INSTITUTION_NAME, StudySpec, base_dataset, code, item, resolve_study
from .patients import PatientSpec

# CID 3001 ECG Leads (MDC codes) in the usual order.
LEADS: tuple[tuple[str, str], ...] = (
    ("2:1", "I"),
    ("2:2", "II"),
    ("2:61", "III"),
    ("2:62", "aVR"),
    ("2:63", "aVL"),
    ("2:64", "aVF"),
    ("2:3", "V1"),
    ("2:4", "V2"),
    ("2:5", "V3"),
    ("2:6", "V4"),
    ("2:7", "V5"),
    ("2:8", "V6"),
)
SENSITIVITY_UV = 1.0  # microvolts per stored unit
# Precordial electrode directions in the horizontal plane, degrees from the patient's left.
_CHEST_ANGLES = (115, 94, 75, 60, 30, 0)
# Waves as (seconds from the R peak, width in s, vector in uV: left, inferior, anterior).
_WAVES = (
    (-0.16, 0.022, (70, 110, 30)),  # P
    (-0.03, 0.008, (-60, -40, 120)),  # Q
    (0.0, 0.011, (700, 950, 150)),  # R
    (0.03, 0.010, (-150, -200, -450)),  # S
    (0.28, 0.050, (180, 230, 160)),  # T
)


def _heart_vector(
    seconds: float, frequency: int, heart_rate: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    t = np.arange(int(seconds * frequency)) / frequency
    vector = np.zeros((3, t.size))
    beat, rr = 0.25, 60.0 / heart_rate
    while beat < seconds + 0.5:
        for offset, width, direction in _WAVES:
            wave = np.exp(-0.5 * ((t - beat - offset) / width) ** 2)
            vector += np.outer(direction, wave)
        beat += rr * (1 + rng.normal(0, 0.03))  # a little sinus arrhythmia
    return vector


def _leads(vector: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    x, y, z = vector
    lead_i = x
    lead_ii = 0.5 * x + math.sqrt(3) / 2 * y
    limb = [lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2]
    limb += [lead_i - lead_ii / 2, lead_ii - lead_i / 2]
    chest = [x * math.cos(math.radians(a)) + z * math.sin(math.radians(a)) for a in _CHEST_ANGLES]
    return np.stack(limb + chest, axis=1)


def _channel(meaning: str, value: str) -> Dataset:
    return item(
        ChannelSourceSequence=[code(f"{value}", "MDC", f"Lead {meaning}")],
        ChannelLabel=meaning,
        ChannelSensitivity=SENSITIVITY_UV,
        ChannelSensitivityUnitsSequence=[code("uV", "UCUM", "microvolt")],
        ChannelSensitivityCorrectionFactor=1,
        ChannelBaseline=0,
        ChannelTimeSkew=0,
        WaveformBitsStored=16,
        FilterLowFrequency=0.05,
        FilterHighFrequency=150,
        NotchFilterFrequency=50,  # mains frequency in China
    )


def ecg_study(
    patient: PatientSpec,
    *,
    seconds: float = 10.0,
    sampling_frequency: int = 500,
    heart_rate: float = 72.0,
    seed: int | None = 0,
    study_date: date | datetime | None = None,
    institution_name: str = DEMO_INSTITUTION_NAME,
    study: StudySpec | None = None,
) -> Iterator[Dataset]:
    """Yield one resting 12-lead ECG: a single RHYTHM multiplex group of int16 samples."""
    if seconds <= 0 or sampling_frequency <= 0 or not 20 <= heart_rate <= 250:
        raise ValueError("need a positive duration and frequency and a heart rate of 20-250")
    spec = resolve_study(
        patient, "ECG", study, seed=seed, study_date=study_date, institution_name=institution_name
    )
    rng = spec.rng("ecg", seconds, sampling_frequency, heart_rate)
    vector = _heart_vector(seconds, sampling_frequency, heart_rate, rng)
    samples = vector.shape[1]
    t = np.arange(samples) / sampling_frequency
    # Wander and noise go into the vector, so the lead relations survive them.
    vector += 40 * np.sin(2 * math.pi * 0.3 * t)
    vector += rng.normal(0, 6, vector.shape)
    signals = _leads(vector)
    data = np.clip(np.round(signals / SENSITIVITY_UV), -32768, 32767).astype("<i2")

    ds = base_dataset(
        spec,
        sop_class_uid=TwelveLeadECGWaveformStorage,
        sop_instance_uid=spec.uid("ecg-waveform", seconds, sampling_frequency, heart_rate),
        series_uid=spec.uid("ecg-series"),
        series_number=1,
        series_description="静息十二导联心电图",
        instance_number=1,
        content_time=spec.at(20),
    )
    ds.AcquisitionDateTime = spec.study_datetime.strftime("%Y%m%d%H%M%S.000000+0800")
    ds.AcquisitionContextSequence = []
    group = item(
        WaveformOriginality="ORIGINAL",
        NumberOfWaveformChannels=len(LEADS),
        NumberOfWaveformSamples=samples,
        SamplingFrequency=sampling_frequency,
        MultiplexGroupLabel="RHYTHM",
        ChannelDefinitionSequence=[_channel(label, value) for value, label in LEADS],
        WaveformBitsAllocated=16,
        WaveformSampleInterpretation="SS",
    )
    # Samples interleave channel by channel: (samples, channels) in C order.
    group.add_new(0x54001010, "OW", data.tobytes())
    ds.WaveformSequence = [group]
    yield ds
