"""What the β-VAE models: object masses instead of energies, events in a canonical frame.

Two independent, exact choices that :class:`~eventgen.preprocess.Preprocessor` applies before
its per-column transform, and that the compiled clean-up (:mod:`eventgen.cleanup`) undoes on
output. Stored files always keep the schema's layout: E columns hold energies.

Representation (``representation``)
    ``"energy"``: the schema's columns as they are, ``(E, pT, η, φ)`` per object.
    ``"mass"``: for every object with ``e``, ``pt`` and ``eta`` columns, its ``e`` column holds
    the object's mass ``m = sqrt(max(E² − (pT cosh η)², 0))`` (float64) instead of its energy.
    A decoded E is a free number beside pT and η, so objects come out with unphysical masses
    (jets many σ off, leptons with masses of GeV) and a classifier that sees the masses
    separates such events perfectly. A decoded mass is physical by construction, and the
    clean-up rebuilds ``E = sqrt(m² + (pT cosh η)²)`` *after* it clipped η and cut on pT (a
    rebuild before the clip would give clipped objects masses of GeV). A family whose masses
    the schema declares (electrons and muons, :attr:`eventgen.schema.Schema.masses`) is given a
    discrete code instead: level ``j`` of ``k`` is ``-1 + 2j / (k - 1)`` (0 for one level), and
    the output snaps to the nearest level. An object takes the level whose energy
    ``sqrt(m_j² + (pT cosh η)²)`` is nearest to its E (the cut between two levels lies at the
    mean of their squared masses), because the mass computed from float32 columns is rounding
    noise at the electron's scale. Absent objects stay exactly 0.
    ``"dilepton"``: the mass representation, and in every event with two leptons (the family
    that declares its masses, and whose count column says 2 or more) the leading two are a
    decaying pair: their ``pt``, ``eta`` and ``phi`` slots hold the pair's mass, pT, rapidity and
    azimuth, and the first lepton's direction (cos θ*, φ*) in the pair's rest frame (axes of
    the frame the event is in), laid out as :func:`to_pair` says; the mass codes stay. A narrow
    resonance is then one column, and an event without radiation (a Z at rest in e+e-, both
    leptons at the beam energy) one point of it, which a per-column quantile transform
    (:mod:`eventgen.preprocess`) keeps exact; in the lepton columns the decoder's errors are
    no longer independent across the two leptons. On ``zll``, with the quantile transform, this
    moved the decoder ceiling AUC from 0.98 to 0.84 (README, "Resonances"). :func:`from_pair`
    rebuilds both leptons exactly (up to which of two leptons of equal pT comes first; the
    clean-up sorts them).
    ``"ee_dilepton"``: for e+e- collisions at a fixed energy. The mass representation, and in
    every event with two leptons their ``pt`` slots hold how far each lepton's energy lies below
    the beam energy (the largest lepton energy in training, :func:`beam_energy`), l1 keeps its
    direction, and l2's ``eta`` and ``phi`` slots hold its acollinearity (the angle to the
    direction opposite l1) and the azimuth of that small turn (:func:`to_beam`). A lepton that
    radiated nothing sits exactly on the beam energy, and one whose partner radiated a
    collinear photon often only 1e-5 to 1e-4 GeV below it: a decoder that builds the lab energy from
    the pair's mass, boost and decay angles is not that precise, and a classifier on the
    leading lepton's energy finds it (on ``zll`` the decoder ceiling AUC was 0.610 in the
    dilepton representation, 0.569 in this one, README "Resonances"). The pair's mass follows
    from the two shortfalls and the acollinearity, which are all near 0 without radiation.

Frame (``frame``)
    ``"lab"``: as measured. ``"canonical"``: each event is turned about the beam so that its
    leading object (highest pT among the objects with a φ column) has φ = 0, mirrored in φ so
    that the second one has φ ≥ 0, and mirrored in η so that the leading one has η ≥ 0. The
    collision is invariant under all three, so the model spends no capacity on them (on tt̄
    this moved the decoder ceiling AUC from 0.88 to 0.75 with the same decoder). An event's
    frame is ``(ψ, s_φ, s_η)``: the canonical event is ``φ' = s_φ wrap(φ − ψ)``, ``η' = s_η η``
    and the event is ``φ = wrap(s_φ φ' + ψ)``, ``η = s_η η'``, for every φ column (MET's too)
    and every η column; absent objects stay 0. A reconstruction is put back into its own
    event's frame (:func:`event_frames`); a generated event gets a uniform ψ in (−π, π] and
    two random signs (:func:`symmetry_draws`), drawn from a stream keyed by the event's
    position, like the buffer's.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from eventgen.schema import PhysicsObject, Schema

Representation = Literal["energy", "mass", "dilepton", "ee_dilepton"]
REPRESENTATIONS: tuple[str, ...] = get_args(Representation)
#: the representations in which the two leading leptons are stored as a pair
PAIR_REPRESENTATIONS: tuple[str, ...] = ("dilepton", "ee_dilepton")
Frame = Literal["lab", "canonical"]
FRAMES: tuple[str, ...] = get_args(Frame)
#: ``SeedSequence([seed, SYMMETRY_STREAM, block])`` draws the frames of a block of generated
#: events; the density buffer's streams are 0 (events and noise) and 1 (stratified shuffles).
SYMMETRY_STREAM = 2


def has_masses(representation: str) -> bool:
    """Whether the E columns of ``representation`` hold masses or mass codes."""
    return representation in ("mass", *PAIR_REPRESENTATIONS)


def mass_objects(schema: Schema) -> list[PhysicsObject]:
    """The objects whose ``e`` column holds a mass in the mass representation (those with e, pt, eta)."""
    return [o for o in schema.objects() if o.e >= 0 and o.eta >= 0]


def level_codes(n_levels: int) -> np.ndarray:
    """The codes ``(n_levels,)`` of a family's discrete masses: evenly spaced in [-1, 1] (0 for one)."""
    return np.linspace(-1.0, 1.0, n_levels) if n_levels > 1 else np.zeros(1)


def coded_columns(schema: Schema) -> np.ndarray:
    """The ``e`` columns that hold a discrete mass code in the mass representation."""
    masses = schema.family_masses
    return np.array([o.e for o in mass_objects(schema) if o.family in masses], dtype=np.int64)


def nearest_level(code: np.ndarray, n_levels: int) -> np.ndarray:
    """Index of the level nearest to each ``code`` (codes as :func:`level_codes` spaces them)."""
    if n_levels == 1:
        return np.zeros(code.shape, np.int64)
    return np.clip(np.rint((code + 1.0) * (n_levels - 1) / 2.0), 0, n_levels - 1).astype(np.int64)


def level_masses(codes: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """The declared mass of ``levels`` each mass code is nearest to."""
    return np.asarray(levels)[nearest_level(codes, len(levels))]


def to_masses(x: np.ndarray, schema: Schema) -> None:
    """Replace the energies of float64 events ``x`` ``(n, n_columns)`` by masses or mass codes, in place."""
    masses = schema.family_masses
    for o in mass_objects(schema):
        pt = x[:, o.pt]
        p = pt * np.cosh(x[:, o.eta])
        m2 = x[:, o.e] ** 2 - p**2
        levels = masses.get(o.family)
        if levels is None:
            x[:, o.e] = np.sqrt(np.maximum(m2, 0.0))
        else:
            squared = np.square(levels)
            level = np.searchsorted(0.5 * (squared[1:] + squared[:-1]), m2)
            x[:, o.e] = np.where(pt > 0, level_codes(len(levels))[level], 0.0)


def from_masses(x: np.ndarray, schema: Schema) -> None:
    """Rebuild the energies of float64 rows ``x`` whose ``e`` columns hold masses or codes, in place."""
    masses = schema.family_masses
    for o in mass_objects(schema):
        pt = np.maximum(x[:, o.pt], 0.0)
        levels = masses.get(o.family)
        if levels is None:
            m = np.maximum(x[:, o.e], 0.0)
        else:
            m = level_masses(x[:, o.e], levels)
        x[:, o.e] = np.where(pt > 0, np.sqrt(m**2 + (pt * np.cosh(x[:, o.eta])) ** 2), 0.0)


#: The largest pair mass and pT :func:`from_pair` builds leptons from (in the schema's unit).
PAIR_LIMIT = 1e15


def pair_columns(schema: Schema) -> tuple[PhysicsObject, PhysicsObject, int]:
    """The two leading leptons of the dilepton representation and their family's count column.

    The leptons are the family that declares its discrete masses; raises ConfigError when the
    schema has no such family with two objects and a count column."""
    from eventgen.errors import ConfigError

    for family, (objects, count) in schema.families().items():
        if family in schema.family_masses and len(objects) >= 2 and count >= 0:
            if all(min(o.e, o.pt, o.eta, o.phi) >= 0 for o in objects[:2]):
                return objects[0], objects[1], count
    raise ConfigError(
        f"the dilepton representation needs two leptons with (e, pt, eta, phi) columns, their count column and "
        f"their declared masses; schema {schema.name!r} has none: use representation 'mass'"
    )


def _pair_rows(
    x: np.ndarray, schema: Schema, decoded: bool
) -> tuple[PhysicsObject, PhysicsObject, np.ndarray, tuple[float, ...]]:
    """The two leptons of a dilepton representation, which rows of ``x`` hold them as a pair and
    their declared masses: rows with both leptons present, or for ``decoded`` rows those whose
    rounded count is 2 or more."""
    l1, l2, count = pair_columns(schema)
    both = np.rint(x[:, count]) >= 2 if decoded else (x[:, l1.pt] > 0) & (x[:, l2.pt] > 0)
    return l1, l2, both, schema.family_masses[l1.family]


def _four_vectors(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``(n, 4)`` float64 ``(E, px, py, pz)``."""
    return np.stack(
        [np.sqrt(m**2 + (pt * np.cosh(eta)) ** 2), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)],
        axis=1,
    )


def _boost(p: np.ndarray, system: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Four-vectors ``p`` ``(n, 4)`` given in the rest frame of a system of four-momentum ``system``
    ``(n, 4)`` and ``mass`` ``(n,)`` > 0, in the frame where it has that four-momentum (with its
    momentum negated: the other way). γ and γβ come from ``system / mass``, never from 1 − β²,
    which rounds to 0 for light, fast systems."""
    gamma = system[:, 0] / mass
    gamma_beta = system[:, 1:] / mass[:, None]
    along = np.einsum("ij,ij->i", gamma_beta, p[:, 1:])
    k = along / (gamma + 1.0) + p[:, 0]
    return np.concatenate([(gamma * p[:, 0] + along)[:, None], p[:, 1:] + k[:, None] * gamma_beta], axis=1)


def to_pair(x: np.ndarray, schema: Schema) -> None:
    """Mass-representation float64 events ``x`` -> the dilepton representation, in place.

    In events with both leptons present: l1's ``pt``, ``eta``, ``phi`` hold the pair's mass, its
    rapidity and its azimuth; l2's ``pt`` the pair's pT, ``eta`` cos θ* and ``phi`` φ* of l1 in
    the pair's rest frame. Other events are left as they are.
    """
    l1, l2, both, levels = _pair_rows(x, schema, decoded=False)
    if not both.any():
        return
    r = x[both]
    p1, p2 = (
        _four_vectors(r[:, o.pt], r[:, o.eta], r[:, o.phi], level_masses(r[:, o.e], levels)) for o in (l1, l2)
    )
    pair = p1 + p2
    mass = np.sqrt(np.maximum(pair[:, 0] ** 2 - np.einsum("ij,ij->i", pair[:, 1:], pair[:, 1:]), 1e-300))
    r[:, l1.pt] = mass
    r[:, l2.pt] = np.hypot(pair[:, 1], pair[:, 2])
    r[:, l1.eta] = 0.5 * np.log(
        np.maximum(pair[:, 0] + pair[:, 3], 1e-300) / np.maximum(pair[:, 0] - pair[:, 3], 1e-300)
    )
    r[:, l1.phi] = np.arctan2(pair[:, 2], pair[:, 1])
    rest = _boost(p1, pair * np.array([1.0, -1.0, -1.0, -1.0]), mass)
    size = np.maximum(np.linalg.norm(rest[:, 1:], axis=1), 1e-300)
    r[:, l2.eta] = np.clip(rest[:, 3] / size, -1.0, 1.0)
    r[:, l2.phi] = np.arctan2(rest[:, 2], rest[:, 1])
    x[both] = r


def from_pair(x: np.ndarray, schema: Schema) -> None:
    """Undo :func:`to_pair` in place on the rows of ``x`` whose rounded count is 2 or more (in float64).

    Each lepton gets the declared mass its code is nearest to; a pair mass below the two lepton
    masses is raised to them, and masses and momenta beyond :data:`PAIR_LIMIT` (|rapidity| beyond
    20) are taken at it, so that a wild decoder output stays finite. The leptons come out in the
    pair's order (l1 the one whose direction was stored), not necessarily by pT.
    """
    l1, l2, both, levels = _pair_rows(x, schema, decoded=True)
    if not both.any():
        return
    r = x[both].astype(np.float64)
    m1, m2 = (level_masses(r[:, o.e], levels) for o in (l1, l2))
    m = np.clip(r[:, l1.pt], (m1 + m2) * (1.0 + 1e-9) + 1e-12, PAIR_LIMIT)
    pt, y, phi = np.clip(r[:, l2.pt], 0.0, PAIR_LIMIT), np.clip(r[:, l1.eta], -20.0, 20.0), r[:, l1.phi]
    cos_theta, phi_star = np.clip(r[:, l2.eta], -1.0, 1.0), r[:, l2.phi]
    mt = np.sqrt(m**2 + pt**2)
    pair = np.stack([mt * np.cosh(y), pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y)], axis=1)
    p_star = np.sqrt(np.maximum((m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2), 0.0)) / (2.0 * m)
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    rest = np.stack(
        [
            (m**2 + m1**2 - m2**2) / (2.0 * m),
            p_star * sin_theta * np.cos(phi_star),
            p_star * sin_theta * np.sin(phi_star),
            p_star * cos_theta,
        ],
        axis=1,
    )
    p1 = _boost(rest, pair, m)
    for o, p in ((l1, p1), (l2, pair - p1)):
        r[:, o.pt] = np.hypot(p[:, 1], p[:, 2])
        r[:, o.eta] = np.arcsinh(p[:, 3] / np.maximum(r[:, o.pt], 1e-30 * np.abs(p[:, 3]) + 1e-300))
        r[:, o.phi] = np.arctan2(p[:, 2], p[:, 1])
    x[both] = r


def beam_energy(x: np.ndarray, schema: Schema) -> float:
    """The largest energy of the two leading leptons in mass-representation float64 events ``x``.

    The ee_dilepton representation measures both leptons' energies below it: in e+e- collisions it
    is the beam energy, which no lepton exceeds. Raises ConfigError when no event has a lepton.
    """
    from eventgen.errors import ConfigError

    l1, l2, _count = pair_columns(schema)
    levels = schema.family_masses[l1.family]
    energies = [_energies(x[present], o, levels) for o in (l1, l2) if (present := x[:, o.pt] > 0).any()]
    if not energies:
        raise ConfigError(
            "the ee_dilepton representation measures lepton energies below the largest in training, "
            "but no training event has a lepton: use representation 'mass'"
        )
    return float(max(e.max() for e in energies))


def _energies(x: np.ndarray, o: PhysicsObject, levels: tuple[float, ...]) -> np.ndarray:
    """Float64 energies of object ``o`` in mass-representation rows ``x`` whose code selects from ``levels``."""
    return np.sqrt(level_masses(x[:, o.e], levels) ** 2 + (x[:, o.pt] * np.cosh(x[:, o.eta])) ** 2)


def _directions(eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit vectors ``(n, 3)`` of pseudorapidities and azimuths."""
    return np.stack([np.cos(phi) / np.cosh(eta), np.sin(phi) / np.cosh(eta), np.tanh(eta)], axis=1)


def _acollinearity_axes(back: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors ``(n, 3)`` that, with the unit vectors ``back``, make right-handed axes:
    the first perpendicular to the beam (z) and to ``back``."""
    a = np.cross(np.array([0.0, 0.0, 1.0]), back)
    a /= np.maximum(np.linalg.norm(a, axis=1), 1e-300)[:, None]
    return a, np.cross(back, a)


def to_beam(x: np.ndarray, schema: Schema, energy: float) -> None:
    """Mass-representation float64 events ``x`` -> the ee_dilepton representation, in place.

    In events with both leptons present: l1's and l2's ``pt`` hold how far their energies lie
    below ``energy`` (:func:`beam_energy`); l1's ``eta`` and ``phi`` stay its direction; l2's
    ``eta`` holds the acollinearity ξ (the angle between l2 and the direction opposite to l1,
    0 for leptons back to back) and its ``phi`` the azimuth of l2 about that direction (from the
    axis perpendicular to it and to the beam). Other events are left as they are.
    """
    l1, l2, both, levels = _pair_rows(x, schema, decoded=False)
    if not both.any():
        return
    r = x[both]
    e1, e2 = (_energies(r, o, levels) for o in (l1, l2))
    back = -_directions(r[:, l1.eta], r[:, l1.phi])
    n2 = _directions(r[:, l2.eta], r[:, l2.phi])
    a, b = _acollinearity_axes(back)
    r[:, l1.pt] = energy - e1
    r[:, l2.pt] = energy - e2
    r[:, l2.eta] = np.arctan2(np.linalg.norm(np.cross(n2, back), axis=1), np.einsum("ij,ij->i", n2, back))
    r[:, l2.phi] = np.arctan2(np.einsum("ij,ij->i", n2, b), np.einsum("ij,ij->i", n2, a))
    x[both] = r


def from_beam(x: np.ndarray, schema: Schema, energy: float) -> None:
    """Undo :func:`to_beam` in place on the rows of ``x`` whose rounded count is 2 or more (in float64).

    Each lepton gets the declared mass its code is nearest to and an energy between that mass and
    ``energy`` (a shortfall below 0 is taken as 0); |η| beyond 20 is taken at 20 and ξ outside
    [0, π] at its bounds, so that a wild decoder output stays finite. The leptons come out in the
    stored order, not necessarily by pT (the clean-up sorts them).
    """
    l1, l2, both, levels = _pair_rows(x, schema, decoded=True)
    if not both.any():
        return
    r = x[both].astype(np.float64)
    eta1 = np.clip(r[:, l1.eta], -20.0, 20.0)
    back = -_directions(eta1, r[:, l1.phi])
    a, b = _acollinearity_axes(back)
    xi, psi = np.clip(r[:, l2.eta], 0.0, np.pi)[:, None], r[:, l2.phi][:, None]
    n2 = np.cos(xi) * back + np.sin(xi) * (np.cos(psi) * a + np.sin(psi) * b)
    momenta = []
    for o in (l1, l2):
        m = level_masses(r[:, o.e], levels)
        e = np.maximum(energy - np.maximum(r[:, o.pt], 0.0), m * (1.0 + 1e-9) + 1e-12)
        momenta.append(np.sqrt(e**2 - m**2))
    r[:, l1.pt] = momenta[0] / np.cosh(eta1)
    r[:, l1.eta] = eta1
    transverse = np.hypot(n2[:, 0], n2[:, 1])
    r[:, l2.pt] = momenta[1] * transverse
    r[:, l2.eta] = np.arcsinh(n2[:, 2] / np.maximum(transverse, 1e-300))
    r[:, l2.phi] = np.arctan2(n2[:, 1], n2[:, 0])
    x[both] = r


def wrap(phi: np.ndarray) -> np.ndarray:
    """Float64 azimuths wrapped to (-π, π]."""
    return np.pi - np.mod(np.pi - phi, 2.0 * np.pi)


def identity_frames(n: int) -> np.ndarray:
    """``n`` frames ``(ψ, s_φ, s_η) = (0, 1, 1)``: events left as they are."""
    frames = np.ones((n, 3))
    frames[:, 0] = 0.0
    return frames


def event_frames(x: np.ndarray, schema: Schema) -> np.ndarray:
    """The canonical frame ``(n, 3)`` float64 ``(ψ, s_φ, s_η)`` of each event of ``x`` ``(n, n_columns)``.

    ψ is the leading object's φ (0 without a present object), s_φ = -1 where the second
    object's φ − ψ wraps below 0, s_η = -1 where the leading object's η is below 0.
    """
    frames = identity_frames(len(x))
    objects = [o for o in schema.objects() if o.phi >= 0]
    if not objects or not len(x):
        return frames
    rows = np.arange(len(x))
    pts = x[:, [o.pt for o in objects]].astype(np.float64)
    order = np.argsort(-pts, axis=1, kind="stable")
    phis = x[:, [o.phi for o in objects]].astype(np.float64)
    etas = np.stack([x[:, o.eta] if o.eta >= 0 else np.zeros(len(x)) for o in objects], axis=1)
    lead = order[:, 0]
    present = pts[rows, lead] > 0
    frames[:, 0] = np.where(present, phis[rows, lead], 0.0)
    frames[:, 2] = np.where(present & (etas[rows, lead] < 0), -1.0, 1.0)
    if len(objects) > 1:
        second = order[:, 1]
        turned = wrap(phis[rows, second] - frames[:, 0])
        frames[:, 1] = np.where((pts[rows, second] > 0) & (turned < 0), -1.0, 1.0)
    return frames


def _turned_columns(schema: Schema) -> list[tuple[int, str, int]]:
    """``(column, kind, pt column or -1)`` of every φ and η column; -1 for a column of no object."""
    pts = {o.name: o.pt for o in schema.objects()}
    return [
        (j, c.kind, pts.get(c.obj, -1) if c.obj is not None else -1)
        for j, c in enumerate(schema.columns)
        if c.kind in ("phi", "eta")
    ]


def to_frame(x: np.ndarray, frames: np.ndarray, schema: Schema) -> None:
    """Turn float64 events ``x`` into their ``frames`` ``(n, 3)``, in place (absent objects stay 0)."""
    for j, kind, pt in _turned_columns(schema):
        turned = frames[:, 1] * wrap(x[:, j] - frames[:, 0]) if kind == "phi" else frames[:, 2] * x[:, j]
        x[:, j] = np.where(x[:, pt] > 0, turned, x[:, j]) if pt >= 0 else turned


def from_frame(x: np.ndarray, frames: np.ndarray, schema: Schema) -> None:
    """Undo :func:`to_frame`: float64 rows ``x`` of the canonical frame back into ``frames``, in place."""
    for j, kind, pt in _turned_columns(schema):
        turned = wrap(frames[:, 1] * x[:, j] + frames[:, 0]) if kind == "phi" else frames[:, 2] * x[:, j]
        x[:, j] = np.where(x[:, pt] > 0, turned, x[:, j]) if pt >= 0 else turned


def symmetry_draws(seed: int, start: int, stop: int) -> np.ndarray:
    """Random frames ``(stop - start, 3)`` float64 of generated events ``start .. stop-1`` of a run.

    ψ is uniform in (-π, π], s_φ and s_η are ±1 with probability 1/2 each. Block ``b`` of
    :data:`~eventgen.components.BLOCK` events draws from ``SeedSequence([seed, SYMMETRY_STREAM, b])``,
    so an event's frame depends only on the seed and its position in the run.
    """
    from eventgen.components import BLOCK

    out = np.empty((stop - start, 3))
    for block in range(start // BLOCK, -(-stop // BLOCK)):
        first = block * BLOCK
        gen = np.random.Generator(np.random.PCG64DXSM(np.random.SeedSequence([seed, SYMMETRY_STREAM, block])))
        u = gen.random((BLOCK, 3))[max(start, first) - first : min(stop, first + BLOCK) - first]
        rows = slice(max(start, first) - start, min(stop, first + BLOCK) - start)
        out[rows, 0] = np.pi * (1.0 - 2.0 * u[:, 0])
        out[rows, 1:] = np.where(u[:, 1:] < 0.5, -1.0, 1.0)
    return out


def cleanup_mass_tables(schema: Schema) -> tuple[np.ndarray, np.ndarray]:
    """Per family of ``schema.families()``: the number of discrete mass levels (0: a continuous mass)
    ``(n_families,)`` int64 and the levels ``(n_families, max levels)`` float64, for the clean-up."""
    families = list(schema.families())
    masses = schema.family_masses
    width = max((len(v) for v in masses.values()), default=1)
    n_levels = np.zeros(len(families), np.int64)
    levels = np.zeros((len(families), width), np.float64)
    for f, family in enumerate(families):
        declared = masses.get(family, ())
        n_levels[f] = len(declared)
        levels[f, : len(declared)] = declared
    return n_levels, levels
