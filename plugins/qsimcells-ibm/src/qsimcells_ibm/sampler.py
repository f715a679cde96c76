"""Per-shot bits from IBM Quantum through qiskit-ibm-runtime's ``SamplerV2``.

A real device (``"ibm_brisbane"``, ...) needs an IBM Quantum account; a fake device
(``"fake_manila"``, ...) runs offline in the runtime's *local testing mode*, where the runtime
hands the job to Qiskit Aer with the device's noise (or, with ``noise=False``, to an ideal
``AerSimulator``).

How the bits come back in logical order:

1. :func:`qsimcells.circuits.measure_every_qubit` replaces the final measurements by one register
   ``qsimcells_final`` whose clbit ``i`` measures logical qubit ``i``, *before* transpilation.
   A design wider than the device is first narrowed by qubit reuse
   (:func:`qsimcells.circuits.reuse_qubits`: each qubit is measured into its clbit as soon as
   its last gate has run, and its wire reset for the next one), so the paper's 10-gene designs
   run on the 5-qubit ``fake_manila`` on 2 wires.
2. The preset pass manager maps the circuit onto the device (layout, routing, ISA gates). The
   measurements travel with their qubits, so clbit ``i`` still reads logical qubit ``i`` on
   whatever physical qubit it ended up on; this is checked after every transpilation (each clbit
   of ``qsimcells_final`` measured exactly once), and the physical qubits are logged and kept in
   :attr:`IBMSampler.last_layout`.
3. Each job returns a ``BitArray`` of per-shot bits (never counts: ``qs.sim`` pairs the cells of
   one shot into a niche), turned into columns by :func:`qsimcells.samplers.bitarray_to_bits`.

Credentials never pass through this module's state: the token stays inside the runtime's
account handling, and every error raised from the runtime is re-raised with any known token
scrubbed from its message and without the original exception chained.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import urllib.request
import warnings
from contextlib import nullcontext
from typing import Any
from urllib.parse import urlparse

import numpy as np

from qsimcells._utils import check_choice
from qsimcells.circuits import check_qubit_reuse, final_measurement_map

__all__ = [
    "CHANNELS",
    "MODES",
    "IBMConnectionError",
    "IBMCredentialsError",
    "IBMSampler",
    "UnknownBackendError",
]

logger = logging.getLogger(__name__)

#: Runtime execution modes: a ``Batch`` or ``Session`` context, or jobs straight on the backend.
MODES = ("batch", "session", "job")
#: Channels of qiskit-ibm-runtime (``ibm_quantum_platform`` is its default since 0.40).
CHANNELS = ("ibm_quantum_platform", "ibm_cloud")
#: Fixed transpiler seed: every call on one circuit gets the same layout (and can reuse it), and
#: the bits depend only on ``rng``.
SEED_TRANSPILER = 1_234_567
#: Shots per job when a backend does not say (IBM devices allow 100 000 or more).
FALLBACK_MAX_SHOTS = 100_000
_FAKE_PREFIX = "fake_"
_DEFAULT_CLOUD_URL = "https://cloud.ibm.com"
_OPTIONS = (
    "backend",
    "mode",
    "optimization_level",
    "max_shots_per_job",
    "noise",
    "qubit_reuse",
    "channel",
    "instance",
    "connect_timeout",
)
_NO_CREDENTIALS = (
    "no IBM Quantum credentials found{for_channel}: save an account once with "
    "QiskitRuntimeService.save_account(channel='ibm_quantum_platform', token=..., "
    "instance=..., set_as_default=True) (written to ~/.qiskit/qiskit-ibm.json), or set the "
    "environment variables QISKIT_IBM_TOKEN and QISKIT_IBM_INSTANCE (optionally "
    "QISKIT_IBM_CHANNEL); a token is never a sampler option. Fake backends ('fake_manila', ...) "
    "run offline without an account."
)


class IBMCredentialsError(RuntimeError):
    """No IBM Quantum account was found, neither saved nor in the environment."""


class IBMConnectionError(ConnectionError):
    """Connecting to IBM Quantum, or running a job there, failed (message scrubbed of tokens)."""


class UnknownBackendError(ValueError):
    """The account has no backend of the requested name."""


# errors this module raises itself: kept as they are (after scrubbing) instead of being wrapped
_OWN_ERRORS = (IBMCredentialsError, IBMConnectionError, UnknownBackendError, ValueError)


# ---------------------------------------------------------------------------------------------
# credentials: found and scrubbed, never kept


def _account_file() -> str:
    # computed on every call: the runtime fixes its default path when it is imported, so a HOME
    # changed later (tests, containers) would otherwise be ignored
    return os.path.join(os.path.expanduser("~"), ".qiskit", "qiskit-ibm.json")


def _find_account(channel: str | None) -> Any:
    """The account the runtime would use (environment variables first, then the saved default
    for ``channel``), or ``None``. Reads local files only, never the network."""
    from qiskit_ibm_runtime.accounts import AccountManager, AccountNotFoundError

    try:
        return AccountManager.get(filename=_account_file(), channel=channel)
    except AccountNotFoundError:
        return None


def _known_secrets(channel: str | None) -> set[str]:
    """Every token that might show up in an error: from the environment and from all saved
    accounts. Read only while an error is being scrubbed, never stored."""
    secrets = {os.environ.get("QISKIT_IBM_TOKEN", "")}
    try:
        from qiskit_ibm_runtime.accounts.storage import read_config

        secrets |= {
            str(acc.get("token") or "")
            for acc in read_config(_account_file()).values()
            if isinstance(acc, dict)
        }
    except Exception:  # a missing or broken config file holds no tokens to scrub
        pass
    try:
        account = _find_account(channel)
        secrets.add(str(getattr(account, "token", "") or ""))
    except Exception:
        pass
    return {s for s in secrets if len(s) >= 4}


def _scrub(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _describe(err: BaseException, secrets: set[str]) -> str:
    """``Type: message`` of an error and its causes, scrubbed (the runtime's top-level message
    often hides the real cause, such as a failed name resolution)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen and len(parts) < 4:
        seen.add(id(current))
        message = str(current)
        if not any(message in part for part in parts):  # wrappers often repeat their cause
            parts.append(f"{type(current).__name__}: {message}")
        current = current.__cause__ or current.__context__
    return _scrub(" <- caused by ".join(parts), secrets)


def _unreachable(account: Any, timeout: float) -> str | None:
    """Why IBM Cloud cannot be reached directly within ``timeout`` seconds, or ``None``.

    The runtime's first request (an IAM token) waits up to 60 s per attempt on a network that
    drops packets; this probe fails within ``timeout`` instead.
    """
    env_proxies = urllib.request.getproxies()
    if (
        getattr(account, "proxies", None)
        or getattr(account, "private_endpoint", False)
        or "https" in env_proxies
        or "all" in env_proxies
    ):
        return None  # a proxy or private endpoint decides reachability; a probe proves nothing
    cloud = urlparse(getattr(account, "url", None) or _DEFAULT_CLOUD_URL)
    iam = urlparse(os.environ.get("IAM_URL") or f"https://iam.{cloud.hostname}")
    for url in (iam, cloud):
        host, port = url.hostname or "", url.port or 443
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as err:
            return f"cannot reach {host}:{port} within {timeout:g} s ({type(err).__name__}: {err})"
    return None


# ---------------------------------------------------------------------------------------------
# helpers for devices and circuits


def _max_shots(device: Any) -> int:
    """Largest number of shots in one job: ``configuration().max_shots`` on both fake V2 backends
    and ``IBMBackend`` (BackendV2 itself has no such attribute)."""
    configuration = getattr(device, "configuration", None)
    value = None
    if callable(configuration):
        try:
            value = getattr(configuration(), "max_shots", None)
        except Exception:  # an ideal simulator or a backend without a configuration
            value = None
    return int(value) if value else FALLBACK_MAX_SHOTS


def _job_seeds(rng: np.random.Generator, n_jobs: int) -> list[int]:
    """Distinct simulator seeds, one per job. Never 0: the runtime's local mode treats a falsy
    ``seed_simulator`` as unset."""
    seeds: list[int] = []
    while len(seeds) < n_jobs:
        seed = int(rng.integers(1, 2**31))
        if seed not in seeds:
            seeds.append(seed)
    return seeds


def _runtime_sampler(mode: Any) -> Any:
    from qiskit_ibm_runtime import SamplerV2

    with warnings.catch_warnings():
        # deprecated since 0.50 in favour of the client-side executor sampler, which 0.40-0.49
        # lack; SamplerV2 runs the same jobs across the whole supported range
        warnings.filterwarnings(
            "ignore", message=".*SamplerV2 class is deprecated", category=DeprecationWarning
        )
        return SamplerV2(mode=mode)


# ---------------------------------------------------------------------------------------------


class IBMSampler:
    """Circuit sampler on an IBM Quantum device, or a fake one offline.

    Parameters
    ----------
    backend
        A real device name (``"ibm_brisbane"``, ...; needs an account) or a fake backend name
        (``"fake_manila"``, ``"fake_guadalupe"``, ...; see
        ``qiskit_ibm_runtime.fake_provider.FakeProviderForBackendV2().backends()``), which runs
        offline in the runtime's local testing mode. Names starting with ``"fake_"`` are fake.
    mode
        Runtime execution mode: ``"batch"`` (a ``Batch`` context per call), ``"session"`` (a
        ``Session``, for plans that allow it) or ``"job"`` (jobs straight on the backend).
    optimization_level
        0-3, for ``generate_preset_pass_manager`` mapping the circuit to the device's ISA.
    max_shots_per_job
        Shots are split into jobs of at most this many; ``None``: the backend's maximum
        (``backend.configuration().max_shots``).
    noise
        Fake backends only: ``False`` runs the circuit, still transpiled to the fake device's
        ISA, on an ideal ``AerSimulator`` (a deterministic circuit then gives exact bits).
    qubit_reuse
        ``"auto"``: when the circuit has more qubits than the device, measure each qubit as soon
        as its last gate has run and reset its wire for the next (mid-circuit measurement and
        reset, see :func:`qsimcells.circuits.reuse_qubits`); ``True``: always; ``False``: never
        (a wider circuit is then an error).
    channel
        Real backends only: ``"ibm_quantum_platform"`` or ``"ibm_cloud"``; ``None`` uses the
        saved default or ``QISKIT_IBM_CHANNEL``.
    instance
        Real backends only: the instance CRN or name; ``None`` uses the saved default or
        ``QISKIT_IBM_INSTANCE``.
    connect_timeout
        Real backends only: seconds to wait for a direct TCP connection to IBM Cloud before
        connecting, so an unreachable network fails fast (skipped behind a proxy); ``None``
        skips the check.

    Notes
    -----
    Credentials come from a saved account or the environment variables ``QISKIT_IBM_TOKEN``
    / ``QISKIT_IBM_INSTANCE``; they are never options, attributes or log messages. Nothing
    connects before :meth:`supports` or :meth:`sample`.
    """

    def __init__(
        self,
        backend: str | None = None,
        *,
        mode: str = "batch",
        optimization_level: int = 1,
        max_shots_per_job: int | None = None,
        noise: bool = True,
        qubit_reuse: bool | str = "auto",
        channel: str | None = None,
        instance: str | None = None,
        connect_timeout: float | None = 10.0,
        **unknown: Any,
    ) -> None:
        if unknown:
            _reject_unknown(unknown)
        if not isinstance(backend, str) or not backend.strip():
            raise ValueError(
                f"backend: expected a device name such as 'ibm_brisbane' or a fake "
                f"backend such as 'fake_manila', got {backend!r}"
            )
        check_choice("mode", mode, MODES)
        if isinstance(optimization_level, bool) or optimization_level not in (0, 1, 2, 3):
            raise ValueError(
                f"optimization_level: {optimization_level!r} is not allowed; "
                "choose one of [0, 1, 2, 3]"
            )
        if max_shots_per_job is not None and (
            isinstance(max_shots_per_job, bool)
            or not isinstance(max_shots_per_job, (int, np.integer))
            or max_shots_per_job < 1
        ):
            raise ValueError(
                f"max_shots_per_job: expected a positive integer or None, got {max_shots_per_job!r}"
            )
        if not isinstance(noise, bool):
            raise ValueError(f"noise: expected True or False, got {noise!r}")
        check_qubit_reuse(qubit_reuse)
        if channel is not None:
            check_choice("channel", channel, CHANNELS)
        if instance is not None and (not isinstance(instance, str) or not instance.strip()):
            raise ValueError(f"instance: expected an instance CRN or name, got {instance!r}")
        if connect_timeout is not None and (
            isinstance(connect_timeout, bool)
            or not isinstance(connect_timeout, (int, float))
            or not math.isfinite(connect_timeout)
            or connect_timeout <= 0
        ):
            raise ValueError(
                f"connect_timeout: expected a positive number of seconds or None, "
                f"got {connect_timeout!r}"
            )

        self.backend_name = backend
        self.mode = mode
        self.optimization_level = int(optimization_level)
        self.max_shots_per_job = None if max_shots_per_job is None else int(max_shots_per_job)
        self.noise = noise
        self.qubit_reuse = qubit_reuse
        self.channel = channel
        self.instance = instance
        self.connect_timeout = connect_timeout
        #: Physical qubit measured into clbit ``i`` (logical qubit ``i``) in the last run.
        self.last_layout: list[int] | None = None
        #: The last transpiled (ISA) circuit that was submitted.
        self.last_circuit: Any = None
        #: Runtime job ids of the last :meth:`sample` call, in submission order.
        self.last_job_ids: list[str] = []
        #: Simulator seed of each job of the last call (local testing mode only).
        self.last_seeds: list[int] = []
        self._backend: Any = None
        self._compiled: tuple[Any, Any] | None = None

        if self.is_fake:
            for field, value in (("channel", channel), ("instance", instance)):
                if value is not None:
                    raise ValueError(
                        f"{field}: only for real backends; {backend!r} is a fake "
                        "backend and runs offline without an account"
                    )
            self._check_max_shots(self.backend)  # offline and cheap: validate the name now
        elif not noise:
            raise ValueError(
                f"noise: False (an ideal simulation) is only for fake backends; "
                f"{backend!r} is a real device. Use a 'fake_...' backend, or the "
                "'aer' or 'statevector' samplers"
            )

    # -- properties and protocol -------------------------------------------------------------

    @property
    def is_fake(self) -> bool:
        """Whether the backend is a fake device run offline in local testing mode."""
        return self.backend_name.startswith(_FAKE_PREFIX)

    def __repr__(self) -> str:
        values = {name: getattr(self, name) for name in _OPTIONS[1:]}
        options = ", ".join(f"{name}={value!r}" for name, value in values.items())
        return f"IBMSampler(backend={self.backend_name!r}, {options})"

    def __getstate__(self) -> dict[str, Any]:
        # a connected backend carries the runtime's client (and so the credentials): never
        # pickled; it is looked up again on first use
        state = self.__dict__.copy()
        state["_backend"] = None
        return state

    @property
    def backend(self) -> Any:
        """The backend object: a fresh fake device, or (on first use) the real device of the
        account, which connects to IBM Quantum."""
        if self._backend is None:
            if self.is_fake:
                from qsimcells.samplers.fake_backends import fake_backend

                self._backend = fake_backend(self.backend_name)
            else:
                self._backend = self._connect()
        return self._backend

    def supports(self, circuit: Any) -> str | None:
        """Why the device cannot take ``circuit`` (``None`` when it can). Connects for a real
        device."""
        device = self.backend  # outside the try: a failed connection is an error, not a reason
        try:
            self._fit(circuit, device)
        except ValueError as err:
            return str(err)
        return None

    def sample(self, circuit: Any, shots: int, *, rng: np.random.Generator) -> np.ndarray:
        """Run ``circuit`` for ``shots`` shots and return per-shot bits in logical qubit order.

        Parameters
        ----------
        circuit
            A Qiskit circuit with bound parameters; final measurements are optional.
        shots
            Number of rows.
        rng
            Seeds the simulator of every job in local testing mode (one distinct seed per job),
            so the same seed gives the same bits; real devices are not reproducible.

        Returns
        -------
        numpy.ndarray
            ``(shots, circuit.num_qubits)`` uint8; column ``i`` is qubit ``i``.
        """
        if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
            raise ValueError(f"shots: expected a positive integer, got {shots!r}")
        shots = int(shots)
        device = self.backend
        try:  # fitted once per call: the same check as supports(), and the circuit to compile
            measured = self._fit(circuit, device)
        except ValueError as err:
            raise ValueError(f"sampler: 'ibm' cannot sample this circuit: {err}") from None
        compiled = self._compile(measured, circuit.num_qubits, device)
        per_job = self.max_shots_per_job or _max_shots(device)
        sizes = [min(per_job, shots - start) for start in range(0, shots, per_job)]
        seeds = _job_seeds(rng, len(sizes))
        logger.info(
            "ibm: %d shots on %s in %d job(s), %s mode%s",
            shots,
            self.backend_name,
            len(sizes),
            self.mode,
            ""
            if not self.is_fake
            else f", local testing mode ({'noisy' if self.noise else 'ideal Aer'})",
        )
        if self.is_fake:
            from qiskit_aer import AerSimulator

            # the ideal simulator runs the same ISA circuit: only the noise is switched off
            target = device if self.noise else AerSimulator()
            bits = self._run(target, compiled, sizes, seeds, seeded=True)
        else:
            bits = self._scrubbed(
                lambda: self._run(device, compiled, sizes, seeds, seeded=False),
                "running on IBM Quantum",
            )
        return bits

    # -- internals ---------------------------------------------------------------------------

    def _check_max_shots(self, device: Any) -> None:
        limit = _max_shots(device)
        if self.max_shots_per_job is not None and self.max_shots_per_job > limit:
            raise ValueError(
                f"max_shots_per_job: {self.max_shots_per_job} exceeds the "
                f"maximum of {limit} shots per job on {self.backend_name}"
            )

    def _fit(self, circuit: Any, device: Any) -> Any:
        """The circuit measured into ``qsimcells_final``, narrowed by qubit reuse when asked or
        needed; a ``ValueError`` when it cannot fit the device."""
        from qsimcells.circuits import fit_to_device

        return fit_to_device(
            circuit, device.num_qubits, self.backend_name, qubit_reuse=self.qubit_reuse
        )

    def _compile(self, measured: Any, n_qubits: int, device: Any) -> Any:
        """``measured`` (from :meth:`_fit`) mapped to the device's ISA; the last one is reused
        when the same circuit comes again (``qs.sim`` samples chunk by chunk)."""
        from qiskit.transpiler import generate_preset_pass_manager

        if self._compiled is not None and self._compiled[0] == measured:
            return self._compiled[1]
        pass_manager = generate_preset_pass_manager(
            optimization_level=self.optimization_level,
            backend=device,
            seed_transpiler=SEED_TRANSPILER,
        )
        compiled = pass_manager.run(measured)
        physical = final_measurement_map(compiled, n_qubits)
        self.last_layout, self.last_circuit = physical, compiled
        self._compiled = (measured, compiled)
        logger.info(
            "ibm: logical qubits 0..%d of the circuit run on physical qubits %s of %s",
            n_qubits - 1,
            physical,
            self.backend_name,
        )
        return compiled

    def _run(
        self, target: Any, compiled: Any, sizes: list[int], seeds: list[int], *, seeded: bool
    ) -> np.ndarray:
        """Submit one job per chunk inside the execution mode, then collect in order."""
        from qiskit_ibm_runtime import Batch, Session
        from tqdm.auto import tqdm

        from qsimcells.circuits import FINAL_REGISTER
        from qsimcells.samplers import bitarray_to_bits

        context = {"batch": Batch, "session": Session}.get(self.mode)
        parts: list[np.ndarray] = []
        with context(backend=target) if context else nullcontext(target) as mode:
            jobs = []
            for size, seed in zip(sizes, seeds, strict=True):
                sampler = _runtime_sampler(mode)
                if seeded:
                    sampler.options.simulator.seed_simulator = seed
                jobs.append(sampler.run([compiled], shots=size))
            self.last_job_ids = [job.job_id() for job in jobs]
            self.last_seeds = list(seeds) if seeded else []
            # tqdm disables itself when stderr is not a terminal (disable=None)
            for job, size in zip(
                tqdm(
                    jobs,
                    desc=f"ibm {self.backend_name}",
                    unit="job",
                    disable=None if len(jobs) > 1 else True,
                ),
                sizes,
                strict=True,
            ):
                result = job.result()
                bits = bitarray_to_bits(getattr(result[0].data, FINAL_REGISTER))
                if bits.shape[0] != size:
                    raise RuntimeError(
                        f"job {job.job_id()} returned {bits.shape[0]} shots, expected {size}"
                    )
                parts.append(bits)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _connect(self) -> Any:
        return self._scrubbed(self._open_backend, "connecting to IBM Quantum")

    def _open_backend(self) -> Any:
        from qiskit.providers.exceptions import QiskitBackendNotFoundError
        from qiskit_ibm_runtime import QiskitRuntimeService

        account = _find_account(self.channel)
        if account is None:
            for_channel = f" for channel {self.channel!r}" if self.channel else ""
            raise IBMCredentialsError(_NO_CREDENTIALS.format(for_channel=for_channel))
        if self.connect_timeout is not None:
            reason = _unreachable(account, self.connect_timeout)
            if reason:
                raise IBMConnectionError(
                    f"{reason}; check the network (or a proxy: "
                    "HTTPS_PROXY), or pass connect_timeout=None to let the "
                    "runtime try anyway"
                )
        del account
        # the runtime discovers the same account again from the same file and environment,
        # so the token never passes through this module
        service = QiskitRuntimeService(
            channel=self.channel, instance=self.instance, filename=_account_file()
        )
        try:
            device = service.backend(self.backend_name)
        except QiskitBackendNotFoundError:
            names = sorted(b.name for b in service.backends())
            raise UnknownBackendError(
                f"backend: {self.backend_name!r} is not available to this "
                f"account; available: {names}"
            ) from None
        self._check_max_shots(device)
        logger.info("ibm: connected to %s (%d qubits)", self.backend_name, device.num_qubits)
        return device

    def _scrubbed(self, action: Any, what: str) -> Any:
        """Run ``action``; re-raise any error with known tokens scrubbed from its message and
        no chained original (whose message, traceback or locals may hold the token)."""
        failure: BaseException | None = None
        try:
            return action()
        except Exception as err:
            failure = err
        # scrub outside the except block: reading the accounts logs, and a failing log handler
        # would print the active exception (whose message may hold the token) with its traceback
        secrets = _known_secrets(self.channel)
        if type(failure) in _OWN_ERRORS:
            # raised by this module with clean messages; scrubbed anyway in case a backend or
            # instance name echoes a secret
            problem = type(failure)(_scrub(str(failure), secrets))
        else:
            problem = IBMConnectionError(
                f"{what} ({self.backend_name!r}) failed: {_describe(failure, secrets)}"
            )
        del failure
        problem.__cause__ = problem.__context__ = None
        raise problem from None


def _reject_unknown(unknown: dict[str, Any]) -> None:
    # names only: a value passed by mistake (a token) must not end up in a message
    secretish = sorted(
        k for k in unknown if any(s in k.lower() for s in ("token", "key", "secret", "password"))
    )
    if secretish:
        raise ValueError(
            f"{secretish[0]}: credentials are never sampler options (options are "
            "stored in adata.uns); save an account with "
            "QiskitRuntimeService.save_account(...) or set QISKIT_IBM_TOKEN"
        )
    raise TypeError(f"unexpected option(s) {sorted(unknown)}; allowed: {list(_OPTIONS)}")
