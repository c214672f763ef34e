"""Refinement: classifier rejection sampling of generated events towards the training sample.

Buffer smoothing makes fresh events at a price: the further a latent point leaves its training
event, the more the decoded event blurs sharp structure (object masses, the top and W peaks).
The refiner measures that price event by event and takes it back. At fit time a gradient-boosted
classifier learns to tell the training events from as many generated ones (``generated`` times as
many, weighted to equal totals), on what a physicist
looks at (:func:`eventgen.metrics.physics_features`: the columns, object masses, ΔR and
observables). Its log-odds ``s(x)`` estimate ``log p_data(x) / p_gen(x)``; a generated event is
kept with probability ``min(1, exp(s(x) - log_cap))``, so the kept events follow
``p_gen * min(p_data / p_gen, cap)``: the generator's density pulled towards the data's wherever
the ratio is below the cap. Kept events are still the generator's own draws, so the refiner does
not copy training events. A single cap would keep fewer events where the generator is worse (say,
events with a lepton) rather than where it makes too many, and so change the multiplicities
at random; instead each stratum of the count columns and lepton flavours (:func:`strata`: n_jets,
n_leptons, e or μ) gets its own cap. Within a stratum the refiner reshapes events; across strata
it thins the ones the generator makes too often, so that the kept events have the training
events' multiplicities: a stratum whose share of the training events is ``r`` times its share of
generated events keeps ``r / r_max`` of the fraction the ``quantile`` cap keeps overall; the strata
too rare for a cap of their own share the overall cap, set the same way for them together
(smoothing blurs the fourth jet's pT below its threshold, so the generator makes 4-jet tt̄ events
17% too rarely; keeping every stratum's fraction, as bundles saved before did, left that as it was).
This is discriminator rejection sampling (Azadi et al., arXiv:1810.06758); in particle physics
the same density ratio reweights generators (Diefenbacher et al., DCTRGAN, arXiv:2009.03796).

The trees are stored as plain arrays (``refine.npz`` in a bundle), checked on load, and
evaluated by a compiled kernel. Generation keeps candidates in blocks: output block ``b`` takes
the first :data:`~eventgen.components.BLOCK` accepted candidates of its own candidate blocks
(positions ``b * MAX_CANDIDATE_BLOCKS + c``) with the acceptance uniforms of their own streams,
so the output depends only on the seed and the position, whatever the batch size, thread
count, worker count or interruption.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from eventgen.errors import BundleError, ConfigError
from eventgen.validate import FLOAT32_MAX, SavedState

if TYPE_CHECKING:
    from eventgen.bundle import Bundle
    from eventgen.schema import Schema

log = logging.getLogger(__name__)
#: candidate blocks an output block may use: a block that needs more is refused (BundleError)
MAX_CANDIDATE_BLOCKS = 64
#: the unit of candidates decoded and judged at a time after the first candidate block
CANDIDATE_CHUNK = 512
_CODE_BASE = 64  # strata: count columns as base-64 digits
REFINE_STREAM = 3  # SeedSequence([seed, REFINE_STREAM, candidate block]) draws the acceptance uniforms
_TREE_ARRAYS = ("feature", "threshold", "missing_left", "left", "right", "value", "roots")


@dataclass(frozen=True)
class RefineSettings:
    """The fit config's ``refine:`` section.

    ``enabled``   train a refiner with the bundle (generation applies it unless ``refine=False``)
    ``quantile``  the acceptance cap, as a quantile of the log-odds over generated events: higher
                  corrects more and keeps fewer candidates (0.7 keeps about 51% on tt̄, 60% on W+jets)
    ``max_trees`` the classifier's boosting iterations at most (early stopping picks fewer)
    ``generated`` generated events per training event the classifier learns from (3 gave 0.636
                  against 0.641 on validation, within the noise, and no gain on other samples)
    """

    enabled: bool = True
    quantile: float = 0.7
    max_trees: int = 200
    generated: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"refine enabled must be true or false, found {self.enabled!r}")
        q = self.quantile
        if isinstance(q, bool) or not isinstance(q, int | float) or not 0 < q < 1:
            raise ConfigError(f"refine quantile={q!r} is invalid; pass a number in (0, 1), e.g. 0.7")
        g = self.generated
        if isinstance(g, bool) or not isinstance(g, int) or not 1 <= g <= 20:
            raise ConfigError(f"refine generated={g!r} is invalid; pass an integer in 1..20")
        n = self.max_trees
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 2000:
            raise ConfigError(f"refine max_trees={n!r} is invalid; pass an integer in 1..2000")
        object.__setattr__(self, "quantile", float(q))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | bool | None, where: str = "refine") -> RefineSettings:
        """Settings of a ``refine:`` section: a mapping of the fields, or ``false`` / ``true``."""
        if data is None or isinstance(data, bool):
            return cls(enabled=True if data is None else data)
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping of keys to values or false, found {data!r}")
        fields = ("enabled", "quantile", "max_trees", "generated")
        unknown = sorted(set(data) - set(fields), key=str)
        if unknown:
            raise ConfigError(f"unknown key {where}.{unknown[0]}; valid keys are {list(fields)}")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check_selection(
        self, selection: str, fix: str = "set refine: false (refine=False) or fit with another selection"
    ) -> None:
        """Refuse to refine a ``weighted`` selection (ConfigError, ending with ``fix``): by default
        the bundle's stored one, or one a run's generate section asks of a refined bundle."""
        if self.enabled and selection == "weighted":
            raise ConfigError(
                f"a refiner learns unweighted events and cannot refine the selection 'weighted'; {fix}"
            )


class Refiner:
    """A boosted-tree classifier of training against generated events, and its acceptance cap.

    ``columns`` ``(k,)`` picks the physics features the trees read (those defined in at least
    :data:`~eventgen.metrics.MIN_DEFINED` training or generated events) out of the schema's
    physics features. The trees are flat arrays over all nodes: ``roots`` ``(n_trees,)`` index
    each tree's first node; an inner node sends a feature value ``<= threshold`` to ``left``, a
    larger one to ``right``, and NaN to ``left`` where ``missing_left``; a leaf (``left == -1``)
    holds ``value``. The log-odds of an event are ``baseline`` plus its leaves' values.
    """

    def __init__(
        self,
        trees: dict[str, np.ndarray],
        columns: np.ndarray,
        schema: Schema,
        baseline: float,
        log_cap: float,
        codes: np.ndarray | None = None,
        log_caps: np.ndarray | None = None,
        pool: tuple[np.ndarray, np.ndarray] | None = None,
        data_strata: np.ndarray | None = None,
    ) -> None:
        self.trees, self.columns, self.schema = trees, columns, schema
        #: the physics-feature column each node reads: the trees read the whole table, uncopied
        self._table_feature = columns[trees["feature"]].astype(np.int32)
        self.baseline, self.log_cap = baseline, log_cap
        #: the strata (:func:`strata` codes, increasing) with caps of their own; others get ``log_cap``
        self.codes = np.zeros(0, np.int64) if codes is None else codes
        self.log_caps = np.zeros(0) if log_caps is None else log_caps
        #: the log-odds and strata of the generated events the caps were set on, kept so that
        #: generation can set them at another quantile (:meth:`with_quantile`); None in older bundles
        self.pool = pool
        #: the strata of the training events, whose shares the caps give the kept events; None in
        #: older bundles, whose caps keep the same fraction of every stratum
        self.data_strata = data_strata

    @classmethod
    def fit(
        cls,
        data: np.ndarray,
        generated: np.ndarray,
        pool: np.ndarray,
        schema: Schema,
        settings: RefineSettings,
        seed: int,
    ) -> Refiner:
        """Train on ``data`` against ``generated`` (raw events of the schema); the cap is the
        ``settings.quantile`` of the log-odds over the other generated events ``pool``."""
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        from eventgen.metrics import MIN_DEFINED, physics_features

        x_data, x_gen = physics_features(data, schema)[0], physics_features(generated, schema)[0]
        defined = np.isfinite(x_data).sum(axis=0) + np.isfinite(x_gen).sum(axis=0) >= MIN_DEFINED
        columns = np.flatnonzero(defined)
        x = np.vstack([x_data[:, columns], x_gen[:, columns]])
        y = np.r_[np.ones(len(x_data)), np.zeros(len(x_gen))]
        weight = np.r_[np.full(len(x_data), 0.5 / len(x_data)), np.full(len(x_gen), 0.5 / len(x_gen))]
        clf = HistGradientBoostingClassifier(
            max_iter=settings.max_trees,
            learning_rate=0.3,  # as faithful as 0.1 on validation, with a third of the trees
            early_stopping=True,
            validation_fraction=0.2,
            n_iter_no_change=15,
            random_state=seed % 2**31,
        )
        with threadpool_limits(1, user_api="openmp"):  # see metrics.classifier_auc
            clf.fit(x, y, sample_weight=weight * len(y))
        trees = _flatten(clf)
        baseline = float(np.ravel(clf._baseline_prediction)[0])
        refiner = cls(trees, columns, schema, baseline, 0.0, data_strata=strata(data, schema))
        refiner.set_caps(pool, settings.quantile)
        return refiner

    def set_caps(self, pool: np.ndarray, quantile: float) -> None:
        """The overall cap, the ``quantile`` of the log-odds over the generated events ``pool``, and a
        cap for each stratum that gives the kept events the training events' shares (module docstring)."""
        self.pool = (self.log_odds(pool), strata(pool, self.schema))
        self._set_caps(quantile)

    def _set_caps(self, quantile: float, min_events: int = 200) -> None:
        assert self.pool is not None
        s, code = self.pool
        self.log_cap = float(np.quantile(s, quantile))
        target = float(np.minimum(1.0, np.exp(s - self.log_cap)).mean())
        values, counts = np.unique(code, return_counts=True)
        many = (
            np.flatnonzero(counts >= min_events)
            if (counts >= min_events).any()
            else np.array([counts.argmax()])
        )
        chosen = values[many]
        self.codes = chosen.astype(np.int64)
        kept = np.full(chosen.size, target)
        rest = ~np.isin(code, chosen)  # the strata too rare for a cap of their own, taken together
        if self.data_strata is not None:  # thin the strata made too often (module docstring)
            data_share = (
                np.array([np.count_nonzero(self.data_strata == c) for c in chosen]) / self.data_strata.size
            )
            ratio = data_share / (counts[many] / code.size)
            rest_ratio = (1.0 - data_share.sum()) / rest.mean() if rest.any() else 0.0
            top = max(ratio.max(), rest_ratio if rest.sum() >= min_events else 0.0)
            if top > 0:  # else no stratum of the pool is in training: keep them alike
                kept = target * ratio / top
                if rest.any():  # never more than the quantile's fraction, when too few to count
                    self.log_cap = _cap_keeping(s[rest], min(target, target * rest_ratio / top))
        self.log_caps = np.array([_cap_keeping(s[code == c], f) for c, f in zip(chosen, kept, strict=True)])

    def with_quantile(self, quantile: float) -> Refiner:
        """This refiner with its caps set at another ``quantile`` of the same generated events:
        higher corrects more and keeps fewer candidates, lower is faster (BundleError for a
        refiner saved without those events' log-odds)."""
        RefineSettings(quantile=quantile)  # checks the value
        if self.pool is None:
            raise BundleError(
                "this bundle's refiner was saved without the log-odds its cap was set on, so its "
                "quantile cannot be changed; fit the bundle again, or generate without a refine quantile"
            )
        other = Refiner(
            self.trees,
            self.columns,
            self.schema,
            self.baseline,
            self.log_cap,
            pool=self.pool,
            data_strata=self.data_strata,
        )
        other._set_caps(quantile)
        return other

    @property
    def n_trees(self) -> int:
        return int(self.trees["roots"].size)

    def log_odds(self, events: np.ndarray) -> np.ndarray:
        """``log p_data / p_gen`` estimated at each of ``events`` ``(n, n_columns)``: ``(n,)`` float64."""
        from eventgen.kernels import tree_sum
        from eventgen.observables import physics_table  # not metrics: generation need not load scipy.stats

        features = physics_table(events, self.schema)[0]
        out = np.full(len(events), self.baseline)
        t = self.trees
        tree_sum(
            features,
            t["roots"],
            self._table_feature,
            t["threshold"],
            t["missing_left"],
            t["left"],
            t["right"],
            t["value"],
            out,
        )
        return out

    def accept(self, events: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """Which of ``events`` to keep ``(n,)`` bool, given a uniform in [0, 1) per event."""
        caps = np.full(len(events), self.log_cap)
        if self.codes.size:
            code = strata(events, self.schema)
            at = np.minimum(np.searchsorted(self.codes, code), self.codes.size - 1)
            known = self.codes[at] == code
            caps[known] = self.log_caps[at[known]]
        return np.log(uniforms) < self.log_odds(events) - caps

    # ------------------------------------------------------------------ state

    def get_state(self) -> dict[str, np.ndarray]:
        scalars = np.array([n_physics_features(self.schema), self.baseline, self.log_cap], dtype=np.float64)
        pool = {} if self.pool is None else {"pool_log_odds": self.pool[0], "pool_strata": self.pool[1]}
        if self.data_strata is not None:
            pool["data_strata"] = self.data_strata
        return {
            **self.trees,
            "columns": self.columns,
            "scalars": scalars,
            "codes": self.codes,
            "log_caps": self.log_caps,
            **pool,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], schema: Schema, source: str = "refine state") -> Refiner:
        """Rebuild from :meth:`get_state`'s arrays, each checked before the kernel sees it."""
        saved = SavedState.of(state, source)
        n_features = n_physics_features(schema)
        scalars = saved.array("scalars", "float", (3,))
        if scalars[0] != n_features:
            raise saved.error("scalars", f"is for {scalars[0]:g} features; the schema gives {n_features}")
        columns = saved.array("columns", "int", (None,), low=0, high=n_features - 1)
        if np.any(np.diff(columns) <= 0):
            raise saved.error("columns", "is not strictly increasing")
        roots = saved.array("roots", "int", (None,), low=0)
        left = saved.array("left", "int", (None,), low=-1)
        n_nodes = left.size
        nodes = (n_nodes,)
        right = saved.array("right", "int", nodes, low=-1, high=n_nodes - 1, sized_by="one per node")
        feature = saved.array("feature", "int", nodes, low=0, high=columns.size - 1, sized_by="one per node")
        threshold = saved.array("threshold", "float", nodes, sized_by="one per node")
        value = saved.array("value", "float", nodes, sized_by="one per node")
        missing_left = saved.array("missing_left", "bool", nodes, sized_by="one per node")
        index = np.arange(n_nodes)
        leaf = left == -1
        # a child always comes after its parent, so every walk ends at a leaf
        if np.any(leaf != (right == -1)) or np.any(~leaf & ((left <= index) | (right <= index))):
            raise saved.error("left", "does not describe trees (a child must follow its parent)")
        if roots.max() >= n_nodes:
            raise saved.error("roots", f"points past the {n_nodes} nodes")
        trees = {
            "feature": feature.astype(np.int32),
            "threshold": threshold,
            "missing_left": missing_left,
            "left": left.astype(np.int32),
            "right": right.astype(np.int32),
            "value": value,
            "roots": roots.astype(np.int32),
        }
        codes = saved.array("codes", "int", (None,), low=0)
        if np.any(np.diff(codes) <= 0):
            raise saved.error("codes", "is not strictly increasing")
        log_caps = saved.array("log_caps", "float", codes.shape, sized_by="one per stratum code")
        pool = None
        if "pool_log_odds" in saved:  # absent in bundles saved before generation could re-set the caps
            s = saved.array("pool_log_odds", "float", (None,))
            pool = (s, saved.array("pool_strata", "int", s.shape, low=0, sized_by="one per pool log-odds"))
        data_strata = None
        if "data_strata" in saved:  # absent in bundles whose caps keep the same fraction of every stratum
            data_strata = saved.array("data_strata", "int", (None,), low=0)
        return cls(
            trees, columns, schema, float(scalars[1]), float(scalars[2]), codes, log_caps, pool, data_strata
        )


def n_physics_features(schema: Schema) -> int:
    """How many physics features (:func:`eventgen.metrics.physics_features`) events of ``schema`` have."""
    from eventgen.observables import physics_names

    return len(physics_names(schema))


def strata(events: np.ndarray, schema: Schema) -> np.ndarray:
    """Each event's stratum ``(n,)`` int64: the digits of one number in base 64, first its count
    columns (each clipped to 0..63), then for each object of a family with discrete masses (the
    lepton flavour) 0 where absent, else 1 + the index of its nearest mass level; at most 10
    digits; 0 for a schema with neither."""
    from eventgen.representation import mass_objects

    digits = [np.rint(events[:, i]) for i, c in enumerate(schema.columns) if c.kind == "count"]
    masses = schema.family_masses
    for o in mass_objects(schema):
        levels = np.asarray(masses.get(o.family, ()), dtype=np.float64)
        if levels.size > 1:
            e, pt, eta = (events[:, i].astype(np.float64) for i in (o.e, o.pt, o.eta))
            m = np.sqrt(np.maximum(e**2 - (pt * np.cosh(eta)) ** 2, 0.0))
            nearest = np.abs(m[:, None] - levels[None, :]).argmin(axis=1)
            digits.append(np.where(pt > 0, 1 + nearest, 0))
    code = np.zeros(len(events), np.int64)
    for digit in digits[:10]:
        code = code * _CODE_BASE + np.clip(digit, 0, _CODE_BASE - 1).astype(np.int64)
    return code


def _cap_keeping(s: np.ndarray, fraction: float) -> float:
    """The log-cap c at which ``mean(min(1, exp(s - c)))`` is ``fraction`` (bisection; it falls with c)."""
    lo, hi = float(s.min()) - 50.0, float(s.max()) + 50.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if np.minimum(1.0, np.exp(s - mid)).mean() > fraction:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def uniforms(seed: int, candidate_block: int, n: int) -> np.ndarray:
    """The acceptance uniforms ``(n,)`` of one candidate block, from its own stream."""
    seq = np.random.SeedSequence([seed, REFINE_STREAM, candidate_block])
    return np.random.Generator(np.random.PCG64DXSM(seq)).random(n)


class CandidateSource(Protocol):
    """What :func:`refine_block` draws candidates from (an :class:`eventgen.generation.EventSource`)."""

    def sample(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]: ...

    def finish(self, z: np.ndarray, weights: np.ndarray | None, start: int = 0) -> np.ndarray: ...


def refine_block(
    block: int, width: int, source: CandidateSource, refiner: Refiner, seed: int, n_columns: int
) -> np.ndarray:
    """Output block ``block``: the first ``width`` accepted events of its candidate blocks.

    Each candidate block's latent points are drawn at once (``source.sample``) and decoded and
    judged in chunks (``source.finish``): the first candidate block whole, then as many
    candidates as the acceptance so far says are still needed (in multiples of
    :data:`CANDIDATE_CHUNK`), so that little is decoded in vain. The chunks depend only on the
    block's own candidates, so the output still depends only on the seed and the position.
    """
    kept: list[np.ndarray] = []
    n_kept = n_judged = 0
    for c in range(MAX_CANDIDATE_BLOCKS):
        index = block * MAX_CANDIDATE_BLOCKS + c
        z, weights = source.sample(index * width, (index + 1) * width)
        u = uniforms(seed, index, width)
        a = 0
        while a < width:
            b = width  # with no acceptance yet, the whole block
            if n_kept:
                needed = int(1.1 * (width - n_kept) / (n_kept / n_judged))
                b = min(width, a + -(-needed // CANDIDATE_CHUNK) * CANDIDATE_CHUNK)
            events = source.finish(z[a:b], None if weights is None else weights[a:b], index * width + a)
            mask = refiner.accept(events[:, :n_columns], u[a:b])
            kept.append(events[mask])
            n_kept += int(mask.sum())
            n_judged += b - a
            if n_kept >= width:
                return np.concatenate(kept)[:width]
            a = b
    raise BundleError(
        f"the bundle's refiner kept {n_kept} of {MAX_CANDIDATE_BLOCKS * width} candidate events; "
        "generate with --no-refine, or fit again with a lower refine quantile"
    )


def _flatten(clf: Any) -> dict[str, np.ndarray]:
    """The fitted classifier's trees as flat node arrays (child indices absolute, leaves -1).

    It reads scikit-learn's fitted predictors (private attributes, unchanged since scikit-learn
    1.0), so only fitting depends on them; tests/test_refine.py checks the result against
    ``decision_function`` on the installed version.
    """
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _TREE_ARRAYS}
    offset = 0
    for (predictor,) in clf._predictors:
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        if np.any(nodes["is_categorical"]):
            raise AssertionError("categorical splits are never asked for")
        parts["feature"].append(np.where(leaf, 0, nodes["feature_idx"]).astype(np.int32))
        parts["threshold"].append(np.clip(nodes["num_threshold"], -FLOAT32_MAX, FLOAT32_MAX))
        parts["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
        parts["left"].append(np.where(leaf, -1, nodes["left"].astype(np.int64) + offset).astype(np.int32))
        parts["right"].append(np.where(leaf, -1, nodes["right"].astype(np.int64) + offset).astype(np.int32))
        parts["value"].append(np.where(leaf, nodes["value"], 0.0))
        parts["roots"].append(np.array([offset], np.int32))
        offset += len(nodes)
    return {k: np.concatenate(v) for k, v in parts.items()}


def fit_refiner(bundle: Bundle, events: np.ndarray, settings: RefineSettings, seed: int) -> Refiner:
    """A refiner for ``bundle`` trained on its training ``events`` against ``settings.generated``
    times as many events it generates with its stored sampling settings (the cap set on as many
    again); records what it did in ``bundle.metadata``."""
    import time

    from eventgen.components import BLOCK
    from eventgen.generation import EventSource

    t0 = time.perf_counter()
    n = len(events)
    m = settings.generated * n
    span = -(-m // BLOCK) * BLOCK
    source = EventSource(bundle, {"refine": False}, seed)
    generated = source.candidates(0, span)[:m]
    pool = source.candidates(span, span + -(-n // BLOCK) * BLOCK)[:n]
    refiner = Refiner.fit(events, generated, pool, bundle.schema, settings, seed)
    kept_pool = pool[refiner.accept(pool, np.random.default_rng(seed).random(len(pool)))]
    kept = len(kept_pool) / len(pool)
    worse = _worsened(events, pool, kept_pool, bundle.schema)
    if worse:
        log.warning(
            "the refiner moves %s away from the training events (W1/sigma before -> after: %s); "
            "if they matter, generate with --no-refine or fit with refine: false",
            ", ".join(worse),
            ", ".join(f"{a:.3f} -> {b:.3f}" for a, b in worse.values()),
        )
    log.info(
        "trained the refiner in %.1f s: %d trees on %d training and %d generated events; it keeps %.0f%% of events",
        time.perf_counter() - t0,
        refiner.n_trees,
        n,
        m,
        100 * kept,
    )
    bundle.metadata["refine"] = {
        **settings.to_dict(),
        "trees": refiner.n_trees,
        "kept_fraction": round(kept, 4),
        "worsened": {name: [round(a, 4), round(b, 4)] for name, (a, b) in worse.items()},
    }
    return refiner


def _worsened(
    data: np.ndarray, before: np.ndarray, after: np.ndarray, schema: Schema
) -> dict[str, tuple[float, float]]:
    """The physics features whose W1/σ to ``data`` the refinement (``before`` -> ``after``) grows
    by more than half, to above 0.1: a refiner fixes the joint distribution it sees, and may
    trade a narrow feature (a resonance mass) for it. Only a warning: ``data`` trained the refiner."""
    from scipy.stats import wasserstein_distance

    from eventgen.metrics import physics_features

    x, names = physics_features(data, schema)
    xb, xa = physics_features(before, schema)[0], physics_features(after, schema)[0]
    out = {}
    for j, name in enumerate(names):
        ref, b, a = (v[np.isfinite(v)] for v in (x[:, j], xb[:, j], xa[:, j]))
        if min(len(ref), len(b), len(a)) < 100 or not np.std(ref) > 0:
            continue
        w_b, w_a = (wasserstein_distance(v, ref) / np.std(ref) for v in (b, a))
        if w_a > 0.1 and w_a > 1.5 * w_b:
            out[name] = (float(w_b), float(w_a))
    return out
