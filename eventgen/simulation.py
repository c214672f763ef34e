"""Simulation of collision events with Pythia 8 and FastJet into flat per-event tables.

Two processes, after the prior art (arXiv:1901.00875):

- ``ttbar``: pp -> tt̄ at 13 TeV (``Top:gg2ttbar``, ``Top:qqbar2ttbar``) with at least
  ``min_leptonic_w`` of the two W bosons decaying to e or μ plus a neutrino. All W decay
  channels stay open (Pythia's branching ratios) and a user hook vetoes, at process level,
  hard processes with fewer W -> e/μ ν decays. This keeps the physical mixture of
  semi-leptonic and di-leptonic events (for one W: the di-leptonic fraction is
  BR/(2 - BR) ≈ 12%, with W -> τν counting as hadronic-side) and both lepton charges;
  forcing W+ -> ℓν with ``onPosIfAny`` would instead double the di-leptonic fraction and
  make the lepton charge asymmetric. The veto happens before showering, so it costs
  little, and Pythia's ``sigmaGen`` then is the cross-section *after* the veto.
- ``zll``: e+e- -> Z/γ* -> ℓ+ℓ- (``WeakSingleBoson:ffbar2gmZ``, Z/γ* decaying to e/μ only)
  at 91.1876 GeV.
- ``wjets``: pp -> W + jet at 13 TeV (``WeakBosonAndParton:qqbar2Wg`` and ``qg2Wq``, hard
  pT > ``WJETS_PTHAT_MIN``), the W forced to e or μ plus a neutrino; further jets come from
  the shower. Same objects and the same 28-column table as ``ttbar``, a second LHC process
  with a different jet multiplicity and no top-quark resonances.

Reconstruction, from the visible (Pythia ``isVisible``) final-state particles:

- leptons: e/μ with pT and |η| cuts, isolated: the summed pT of all *other* visible
  final-state particles within ΔR < ``lepton_iso_dr`` is below ``lepton_iso_max`` × pT;
- jets: anti-kt (or kt / Cambridge-Aachen) with radius ``jet_r`` on all visible final-state
  particles except the selected isolated leptons, with pT and |η| cuts;
- MET: minus the vector sum of the pT of visible final-state particles with
  |η| < ``met_eta_max`` (4.9, a calorimeter's reach; set it large to use all of them).

Events are generated in fixed-size shards; shard ``k`` seeds Pythia from
``SeedSequence([seed, k])``, so the output depends on (settings, seed, n_events,
shard_size) and never on the number of worker processes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import multiprocessing
import os
import resource
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal, get_args

import numpy as np

from eventgen.dataset import ShardPlan, run_shards
from eventgen.errors import ConfigError, EventgenError
from eventgen.schema import BUILTIN_SCHEMAS, Schema

logger = logging.getLogger(__name__)

Process = Literal["ttbar", "zll", "wjets"]
JetAlgorithm = Literal["antikt", "kt", "cambridge"]
PROCESSES: tuple[str, ...] = get_args(Process)
JET_ALGORITHMS: tuple[str, ...] = get_args(JetAlgorithm)
DEFAULT_ECM: dict[str, float] = {"ttbar": 13000.0, "zll": 91.1876, "wjets": 13000.0}
# Events per shard: Pythia initialises once per shard (~0.35 s for ttbar, ~0.12 s for zll), so
# shards are ~10x the init time; ttbar takes ~7 ms per event, wjets ~3 ms, zll ~0.1 ms.
DEFAULT_SHARD_SIZE: dict[str, int] = {"ttbar": 500, "zll": 10_000, "wjets": 1000}
# The table layout of each process: wjets has ttbar's objects, so it shares its schema.
_SCHEMA_OF: dict[str, str] = {"ttbar": "ttbar", "zll": "zll", "wjets": "ttbar"}
# Lower cut on the hard W + parton process's pT (GeV), a little above the jets' pT threshold:
# below it the W + jet matrix element diverges and almost no event has a jet in acceptance.
WJETS_PTHAT_MIN = 30.0
PYTHIA_SEED_MAX = 900_000_000
MB_TO_PB = 1e9
_BATCH = 50  # events per nextBatch call: bounds the memory of the full event records
_LEPTON_IDS = (11, 13)
_N_JETS_KEPT = 4
_N_LEPTONS_KEPT = 2


@dataclass(frozen=True)
class SimulationSettings:
    """Physics settings of a simulation; the keys of ``configs/simulate-*.yaml``.

    ``ecm`` is the centre-of-mass energy in GeV (``None``: the process default, 13 TeV pp
    for ``ttbar`` and ``wjets``, 91.1876 GeV e+e- for ``zll``). ``min_leptonic_w`` (0, 1 or 2) applies to
    ``ttbar`` only. ``pythia`` holds extra Pythia ``readString`` lines, read after the
    built-in ones (so they may override them) and before the seed lines.
    """

    process: Process = "ttbar"
    ecm: float | None = None
    min_leptonic_w: int = 1
    jet_algorithm: JetAlgorithm = "antikt"
    jet_r: float = 0.4
    jet_pt_min: float = 20.0
    jet_eta_max: float = 2.5
    lepton_pt_min: float = 10.0
    lepton_eta_max: float = 2.5
    lepton_iso_dr: float = 0.3
    lepton_iso_max: float = 0.15
    met_eta_max: float = 4.9
    pythia: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.process not in PROCESSES:
            raise ConfigError(f"unknown process {self.process!r}; choose one of {list(PROCESSES)}")
        if self.jet_algorithm not in JET_ALGORITHMS:
            raise ConfigError(
                f"unknown jet_algorithm {self.jet_algorithm!r}; choose one of {list(JET_ALGORITHMS)}"
            )
        if self.ecm is not None and not self.ecm > 0:
            raise ConfigError(
                f"ecm must be a positive energy in GeV (or null for the default), found {self.ecm}"
            )
        if self.min_leptonic_w not in (0, 1, 2):
            raise ConfigError(f"min_leptonic_w must be 0, 1 or 2, found {self.min_leptonic_w}")
        positive = {
            "jet_r": self.jet_r,
            "jet_eta_max": self.jet_eta_max,
            "lepton_eta_max": self.lepton_eta_max,
            "lepton_iso_dr": self.lepton_iso_dr,
            "lepton_iso_max": self.lepton_iso_max,
            "met_eta_max": self.met_eta_max,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{name} must be > 0, found {value}")
        for name, value in {"jet_pt_min": self.jet_pt_min, "lepton_pt_min": self.lepton_pt_min}.items():
            if not value >= 0:
                raise ConfigError(f"{name} must be >= 0 GeV, found {value}")
        if isinstance(self.pythia, str) or not all(isinstance(line, str) for line in self.pythia):
            raise ConfigError(
                "pythia must be a list of Pythia setting strings such as 'PartonLevel:MPI = off'"
            )
        object.__setattr__(self, "pythia", tuple(self.pythia))

    @classmethod
    def for_process(cls, process: Process) -> SimulationSettings:
        """The default settings of ``process`` with its beam energy filled in."""
        if process not in PROCESSES:
            raise ConfigError(f"unknown process {process!r}; choose one of {list(PROCESSES)}")
        return cls(process=process, ecm=DEFAULT_ECM[process], min_leptonic_w=1 if process == "ttbar" else 0)

    @property
    def ecm_gev(self) -> float:
        """The centre-of-mass energy in GeV, the process default where ``ecm`` is None."""
        return DEFAULT_ECM[self.process] if self.ecm is None else float(self.ecm)


def schema_for(process: Process) -> Schema:
    """The schema of the table that :func:`simulate` returns for ``process``."""
    if process not in PROCESSES:
        raise ConfigError(f"unknown process {process!r}; choose one of {list(PROCESSES)}")
    return BUILTIN_SCHEMAS[_SCHEMA_OF[process]]


def pythia_seed(seed: int, shard_index: int) -> int:
    """Pythia's seed for shard ``shard_index`` of a run seeded ``seed``, in [1, 900000000]."""
    state = np.random.SeedSequence([seed, shard_index]).generate_state(1, np.uint64)[0]
    return int(state % PYTHIA_SEED_MAX) + 1


def pythia_lines(settings: SimulationSettings) -> list[str]:
    """The Pythia ``readString`` lines of ``settings``, without the seed lines."""
    ecm = settings.ecm_gev
    if settings.process == "ttbar":
        physics = [
            "Beams:idA = 2212",
            "Beams:idB = 2212",
            f"Beams:eCM = {ecm!r}",
            "Top:gg2ttbar = on",
            "Top:qqbar2ttbar = on",
        ]
    elif settings.process == "wjets":
        physics = [
            "Beams:idA = 2212",
            "Beams:idB = 2212",
            f"Beams:eCM = {ecm!r}",
            "WeakBosonAndParton:qqbar2Wg = on",
            "WeakBosonAndParton:qg2Wq = on",
            f"PhaseSpace:pTHatMin = {WJETS_PTHAT_MIN!r}",
            "24:onMode = off",
            "24:onIfAny = 11 13",
        ]
    else:
        physics = [
            "Beams:idA = 11",
            "Beams:idB = -11",
            f"Beams:eCM = {ecm!r}",
            "WeakSingleBoson:ffbar2gmZ = on",
            "23:onMode = off",
            "23:onIfAny = 11 13",
        ]
    quiet = [
        "Print:quiet = on",
        "Print:errors = off",
        "Next:numberCount = 0",
        "Next:numberShowEvent = 0",
        "Next:numberShowProcess = 0",
        "Next:numberShowInfo = 0",
    ]
    return physics + quiet + list(settings.pythia)


def simulate_shard(
    settings: SimulationSettings, n_events: int, seed: int, shard_index: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Generate and reconstruct one shard of ``n_events`` events.

    Returns the events, float32 ``(n_events, n_columns)`` in the order of
    ``schema_for(settings.process)``, and the shard's info: its Pythia seed, cross-section
    estimate (mb), Pythia's tried/selected/accepted counts, the init/generation/reconstruction
    seconds and the peak memory of the process that ran it.
    """
    if n_events < 0:
        raise ConfigError(f"n_events must be >= 0, found {n_events}")
    _silence_fastjet()
    t0 = time.perf_counter()
    pyseed = pythia_seed(seed, shard_index)
    pythia, hook = _make_pythia(settings, pyseed)
    t1 = time.perf_counter()
    particles = _generate(pythia, n_events)
    t2 = time.perf_counter()
    events = _reconstruct(settings, particles)
    t3 = time.perf_counter()
    info = pythia.infoPython()
    del hook  # kept alive until generation is over: Pythia holds it by a shared pointer
    return events, {
        "shard_index": shard_index,
        "n_events": n_events,
        "pythia_seed": pyseed,
        "sigma_mb": float(info.sigmaGen()),
        "sigma_err_mb": float(info.sigmaErr()),
        "n_tried": int(info.nTried()),
        "n_selected": int(info.nSelected()),
        "n_accepted": int(info.nAccepted()),
        "init_s": t1 - t0,
        "generate_s": t2 - t1,
        "reconstruct_s": t3 - t2,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # of the whole process
    }


def simulate(
    settings: SimulationSettings,
    n_events: int,
    seed: int,
    workers: int | None = None,
    progress: bool = False,
    shard_size: int | None = None,
    *,
    executor: concurrent.futures.Executor | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Simulate ``n_events`` events in shards of ``shard_size``, one task per shard.

    The shards run on ``executor`` (for example a Dask cluster's, see
    :class:`eventgen.distributed.DaskExecutor`), else on a pool of ``workers`` processes made for
    the run (default: all CPU cores; one runs them in this process).
    Returns float32 ``(n_events, n_columns)`` in the order of ``schema_for(settings.process)``
    and a provenance dict (settings, Pythia lines, package versions, seed, cross-section in
    mb and pb, tried and accepted counts, per-shard info). The output is identical for any
    executor and number of workers; it depends on ``shard_size`` (default:
    ``DEFAULT_SHARD_SIZE[settings.process]``), which is recorded.

    In Python: ``events, provenance = simulate(SimulationSettings.for_process("ttbar"), 20_000,
    seed=1)``, then ``EventTable(events, schema_for("ttbar"), provenance)`` for :func:`eventgen.fit`.
    """
    _check_memory(settings.process, n_events)
    plan = ShardPlan(n_events, DEFAULT_SHARD_SIZE[settings.process] if shard_size is None else shard_size)
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1 (or None for all cores), found {workers}")
    if workers is not None and executor is not None:
        raise ConfigError("pass either workers (a local process pool) or an executor, not both")
    n_workers = max(1, min(workers or os.cpu_count() or 1, plan.n_shards))
    logger.info(
        "simulating %d %s events in %d shards on %s",
        n_events,
        settings.process,
        plan.n_shards,
        f"{n_workers} workers" if executor is None else type(executor).__name__,
    )
    from tqdm import tqdm

    task = functools.partial(_simulate_shard, settings, seed, plan)
    results: list[tuple[np.ndarray, dict[str, Any]]] = []
    with contextlib.ExitStack() as stack:
        if executor is None and n_workers > 1:
            context = multiprocessing.get_context("forkserver")
            executor = stack.enter_context(
                concurrent.futures.ProcessPoolExecutor(n_workers, mp_context=context)
            )
        bar = stack.enter_context(
            tqdm(total=n_events, unit="ev", disable=not progress, desc=f"simulate {settings.process}")
        )
        shards = stack.enter_context(contextlib.closing(run_shards(task, range(plan.n_shards), executor)))
        for result in shards:  # fails fast, e.g. on a bad setting: the shards not started are cancelled
            results.append(result)
            bar.update(result[1]["n_events"])
    results.sort(key=lambda r: r[1]["shard_index"])
    n_columns = len(schema_for(settings.process))
    events = np.concatenate([r[0] for r in results]) if results else np.zeros((0, n_columns), np.float32)
    return events, _provenance(settings, seed, plan.shard_size, [r[1] for r in results])


def _check_memory(process: Process, n_events: int) -> None:
    """Refuse a run whose events cannot be held in this machine's memory (twice: the shards and the table)."""
    from eventgen.outputs import format_bytes, physical_memory

    row = 4 * len(schema_for(process))
    need, have = 2 * n_events * row, physical_memory()
    if need > have:
        raise ConfigError(
            f"{n_events} {process} events do not fit in memory: a simulation holds its events until it writes "
            f"them, twice {row} bytes per event, {format_bytes(need)}, and this machine has {format_bytes(have)}; "
            f"simulate at most {have // (2 * row)} events per run"
        )


def _simulate_shard(
    settings: SimulationSettings, seed: int, plan: ShardPlan, k: int
) -> tuple[np.ndarray, dict[str, Any]]:
    return simulate_shard(settings, plan.size(k), seed, k)


def _provenance(
    settings: SimulationSettings, seed: int, shard_size: int, shards: list[dict[str, Any]]
) -> dict[str, Any]:
    weights = np.array([s["n_accepted"] for s in shards], dtype=np.float64)
    sigma = np.array([s["sigma_mb"] for s in shards])
    error = np.array([s["sigma_err_mb"] for s in shards])
    total = weights.sum()
    sigma_mb = float((weights * sigma).sum() / total) if total > 0 else float("nan")
    sigma_err_mb = float(np.sqrt(((weights * error) ** 2).sum()) / total) if total > 0 else float("nan")
    return {
        "generator": "eventgen.simulate",
        "settings": dataclasses.asdict(settings),
        "pythia_lines": pythia_lines(settings),
        "seed_lines": "Random:setSeed = on, Random:seed = pythia_seed(seed, shard_index)",
        "versions": {
            name: _version(name) for name in ("eventgen", "pythia8mc", "fastjet", "numpy", "awkward")
        },
        "seed": seed,
        "shard_size": shard_size,
        "n_shards": len(shards),
        "n_events": int(sum(s["n_events"] for s in shards)),
        "cross_section": {
            "mb": sigma_mb,
            "mb_err": sigma_err_mb,
            "pb": sigma_mb * MB_TO_PB,
            "pb_err": sigma_err_mb * MB_TO_PB,
        },
        "n_tried": int(sum(s["n_tried"] for s in shards)),
        "n_selected": int(sum(s["n_selected"] for s in shards)),
        "n_accepted": int(sum(s["n_accepted"] for s in shards)),
        "shards": shards,
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# --- Pythia ----------------------------------------------------------------------------


def _import_pythia() -> Any:
    try:
        import pythia8mc
    except ImportError:
        raise EventgenError(
            "simulation needs Pythia 8 and FastJet; install them with `pip install eventgen[simulation]`"
        ) from None
    return pythia8mc


def _make_pythia(settings: SimulationSettings, seed: int) -> tuple[Any, Any]:
    """An initialised Pythia for ``settings`` seeded ``seed``, and its user hook (or None)."""
    pythia8mc = _import_pythia()
    pythia = pythia8mc.Pythia("", False)
    for line in [*pythia_lines(settings), "Random:setSeed = on", f"Random:seed = {seed}"]:
        if not pythia.readString(line, False):
            raise ConfigError(
                f"Pythia does not understand the setting {line!r}; check it in the Pythia 8 manual"
            )
    hook = None
    if settings.process == "ttbar" and settings.min_leptonic_w > 0:
        hook = _leptonic_w_veto(pythia8mc, settings.min_leptonic_w)
        pythia.setUserHooksPtr(hook)
    if not pythia.init():
        raise ConfigError(
            f"Pythia failed to initialise for process {settings.process!r}; check the pythia lines"
        )
    return pythia, hook


def _leptonic_w_veto(pythia8mc: Any, minimum: int) -> Any:
    """A Pythia user hook vetoing hard processes with fewer than ``minimum`` W -> e/μ ν decays."""

    class LeptonicWVeto(pythia8mc.UserHooks):
        def canVetoProcessLevel(self) -> bool:
            return True

        def doVetoProcessLevel(self, process: Any) -> bool:
            found = 0
            for i in range(process.size()):
                particle = process[i]
                if particle.idAbs() in _LEPTON_IDS and process[particle.mother1()].idAbs() == 24:
                    found += 1
            return found < minimum

    return LeptonicWVeto()


@dataclass
class _Particles:
    """Visible final-state particles of ``n_events`` events, flat: event ``i`` owns
    ``counts[i]`` consecutive entries of each ``(n_particles,)`` array."""

    counts: np.ndarray
    pid: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray

    @property
    def event(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.counts)), self.counts)


def _generate(pythia: Any, n_events: int) -> _Particles:
    """Generate ``n_events`` events with Pythia's batch interface; keep visible final state."""
    import awkward as ak

    chunks: list[_Particles] = []
    visible: dict[int, bool] = {}
    got = failures = 0
    while got < n_events:
        batch = pythia.nextBatch(min(_BATCH, n_events - got), "skip")
        if len(batch) == 0:
            failures += 1
            if failures > 10:
                raise EventgenError("Pythia failed to generate events repeatedly; check the pythia lines")
            continue
        prt = batch["prt"]
        final = prt[prt["status"] > 0]
        pid_all = ak.to_numpy(ak.flatten(final["id"])).astype(np.int64)
        keep = _visible(pythia, pid_all, visible)
        counts_all = ak.to_numpy(ak.num(final["id"]))
        event = np.repeat(np.arange(len(counts_all)), counts_all)
        p = final["p"]
        chunks.append(
            _Particles(
                counts=np.bincount(event[keep], minlength=len(counts_all)),
                pid=pid_all[keep],
                **{k: ak.to_numpy(ak.flatten(p[k]))[keep] for k in ("px", "py", "pz", "e")},
            )
        )
        got += len(batch)
    if not chunks:
        empty = np.zeros(0)
        return _Particles(np.zeros(0, np.int64), np.zeros(0, np.int64), empty, empty, empty, empty)
    return _Particles(
        *(np.concatenate([getattr(c, f.name) for c in chunks]) for f in dataclasses.fields(_Particles))
    )


def _visible(pythia: Any, codes: np.ndarray, cache: dict[int, bool]) -> np.ndarray:
    """Pythia's ``isVisible`` of each particle code in ``codes``, asked once per distinct code."""
    unique, inverse = np.unique(codes, return_inverse=True)
    for code in unique.tolist():
        if code not in cache:
            cache[code] = bool(pythia.particleData.isVisible(code))
    return np.array([cache[code] for code in unique.tolist()], dtype=bool)[inverse]


# --- reconstruction --------------------------------------------------------------------


def _reconstruct(settings: SimulationSettings, particles: _Particles) -> np.ndarray:
    """The schema rows, float32 ``(n_events, n_columns)``, of the events in ``particles``."""
    n_events = len(particles.counts)
    pt, eta, phi = _pt_eta_phi(particles.px, particles.py, particles.pz)
    event = particles.event
    lepton = _isolated_leptons(settings, particles, pt, eta, phi)
    kin = np.stack([particles.e, pt, eta, phi], axis=1)
    leptons, n_leptons = _leading(event[lepton], kin[lepton], n_events, _N_LEPTONS_KEPT)
    if settings.process == "zll":
        out = np.concatenate([leptons, n_leptons[:, None]], axis=1)
    else:
        jets, n_jets = _jets(settings, particles, ~lepton)
        met = _met(settings, particles, eta, event)
        out = np.concatenate([met, jets, leptons, n_jets[:, None], n_leptons[:, None]], axis=1)
    out = out.astype(np.float32)
    names = schema_for(settings.process).names
    for i, name in enumerate(names):
        if name.endswith("phi"):
            out[:, i] = _wrap_phi32(out[:, i])
    return out


def _pt_eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(pz / pt)
    eta = np.where(pt > 0, eta, np.copysign(np.inf, pz))
    return pt, eta, np.arctan2(py, px)


def _wrap_phi32(phi: np.ndarray) -> np.ndarray:
    """Float32 angles in (-π, π] (float32 rounding can land exactly on -π)."""
    pi = np.float32(np.pi)
    return np.where(phi <= -pi, phi + 2 * pi, phi).astype(np.float32)


def _isolated_leptons(
    settings: SimulationSettings, particles: _Particles, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray
) -> np.ndarray:
    """Boolean ``(n_particles,)`` mask of the selected isolated electrons and muons."""
    candidate = (
        np.isin(np.abs(particles.pid), _LEPTON_IDS)
        & (pt > settings.lepton_pt_min)
        & (np.abs(eta) < settings.lepton_eta_max)
    )
    index = np.flatnonzero(candidate)
    if index.size == 0:
        return candidate
    starts = np.concatenate([[0], np.cumsum(particles.counts)[:-1]])
    owner = particles.event[index]
    lengths = particles.counts[owner]
    pair = np.repeat(np.arange(index.size), lengths)  # (n_pairs,) candidate number of each pair
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    other = np.repeat(starts[owner], lengths) + np.arange(pair.size) - first  # (n_pairs,) particle index
    dphi = np.remainder(phi[other] - phi[index[pair]] + np.pi, 2 * np.pi) - np.pi
    deta = eta[other] - eta[index[pair]]
    with np.errstate(invalid="ignore"):
        near = (deta**2 + dphi**2 < settings.lepton_iso_dr**2) & (other != index[pair])
    cone = np.bincount(pair, weights=np.where(near, pt[other], 0.0), minlength=index.size)
    isolated = np.zeros_like(candidate)
    isolated[index] = cone < settings.lepton_iso_max * pt[index]
    return isolated


def _leading(event: np.ndarray, kin: np.ndarray, n_events: int, n_keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_keep`` leading objects by pT per event, zero-filled, and the object counts.

    ``event`` ``(n_objects,)`` owning event, ``kin`` ``(n_objects, 4)`` as (e, pt, eta, phi).
    Returns ``(n_events, 4 * n_keep)`` and ``(n_events,)``.
    """
    order = np.lexsort((-kin[:, 1], event))
    event, kin = event[order], kin[order]
    counts = np.bincount(event, minlength=n_events)
    rank = np.arange(event.size) - np.repeat(np.cumsum(counts) - counts, counts)
    out = np.zeros((n_events, n_keep, 4))
    kept = rank < n_keep
    out[event[kept], rank[kept]] = kin[kept]
    return out.reshape(n_events, 4 * n_keep), counts


def _jets(
    settings: SimulationSettings, particles: _Particles, use: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Leading jets ``(n_events, 16)`` and jet counts ``(n_events,)`` from particles where ``use``."""
    import awkward as ak
    import fastjet

    n_events = len(particles.counts)
    counts = np.bincount(particles.event[use], minlength=n_events)
    inputs = ak.unflatten(
        ak.zip(
            {k: getattr(particles, a)[use] for k, a in (("px", "px"), ("py", "py"), ("pz", "pz"), ("E", "e"))}
        ),
        counts,
    )
    algorithm = {
        "antikt": fastjet.antikt_algorithm,
        "kt": fastjet.kt_algorithm,
        "cambridge": fastjet.cambridge_algorithm,
    }[settings.jet_algorithm]
    jets = fastjet.ClusterSequence(inputs, fastjet.JetDefinition(algorithm, settings.jet_r)).inclusive_jets(
        settings.jet_pt_min
    )
    n_per_event = ak.to_numpy(ak.num(jets))
    px, py, pz, e = (ak.to_numpy(ak.flatten(jets[k])).astype(np.float64) for k in ("px", "py", "pz", "E"))
    pt, eta, phi = _pt_eta_phi(px, py, pz)
    event = np.repeat(np.arange(n_events), n_per_event)
    keep = (pt > settings.jet_pt_min) & (np.abs(eta) < settings.jet_eta_max)
    kin = np.stack([e, pt, eta, phi], axis=1)
    return _leading(event[keep], kin[keep], n_events, _N_JETS_KEPT)


def _met(
    settings: SimulationSettings, particles: _Particles, eta: np.ndarray, event: np.ndarray
) -> np.ndarray:
    """``(n_events, 2)``: MET magnitude and azimuth from visible particles with |η| < met_eta_max."""
    n_events = len(particles.counts)
    inside = np.abs(eta) < settings.met_eta_max
    mpx = -np.bincount(event, weights=np.where(inside, particles.px, 0.0), minlength=n_events)
    mpy = -np.bincount(event, weights=np.where(inside, particles.py, 0.0), minlength=n_events)
    return np.stack([np.hypot(mpx, mpy), np.arctan2(mpy, mpx)], axis=1)


def _silence_fastjet() -> None:
    """Switch off FastJet's banner (printed to stdout at the first clustering) in this process."""
    try:
        from fastjet import _swig

        _swig.ClusterSequence.set_fastjet_banner_stream(None)
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - other fastjet builds
        logger.debug("could not switch off the FastJet banner")
