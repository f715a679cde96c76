"""Per-shot bits from Qiskit Aer's ``SamplerV2``.

The circuit runs as :func:`qsimcells.circuits.measure_every_qubit` makes it: its final
measurements (one register per cell type, or none) become one register whose clbit ``i`` reads
qubit ``i``. Aer returns one bit string per shot in shot order (a ``BitArray``, never aggregated
counts, because ``qs.sim`` pairs the cells of one shot into a niche), converted to logical order
once by :func:`qsimcells.samplers.bitarray_to_bits`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from qsimcells._utils import check_choice
from qsimcells.circuits import check_qubit_reuse

logger = logging.getLogger(__name__)

#: Aer simulation methods that sample measurements (``unitary`` and ``superop`` do not).
METHODS = (
    "automatic",
    "statevector",
    "density_matrix",
    "stabilizer",
    "matrix_product_state",
    "extended_stabilizer",
    "tensor_network",
)
#: The largest number of shots given to Aer in one run (bounds the memory of the bit strings).
SHOTS_PER_RUN = 1_000_000


class AerSampler:
    """Circuit sampler on ``qiskit_aer.AerSimulator``.

    Parameters
    ----------
    method
        Aer simulation method: ``"automatic"``, ``"statevector"``, ``"density_matrix"``,
        ``"stabilizer"``, ``"matrix_product_state"``, ``"extended_stabilizer"`` or
        ``"tensor_network"`` (GPU only).
    noise_model
        ``None`` (ideal), a ``qiskit_aer.noise.NoiseModel``, or the name of a fake IBM backend
        (``"fake_manila"``, ...; needs qiskit-ibm-runtime) whose noise, coupling map and basis
        gates are borrowed; the circuit is then transpiled to that device and must fit on it.
    device
        ``"CPU"`` or ``"GPU"`` (when the installed Aer has GPU support).
    optimization_level
        Transpiler optimisation level (0-3) used to map the circuit to the simulator's gates.
    qubit_reuse
        ``"auto"``: a circuit wider than the borrowed device is narrowed by measuring each qubit
        as soon as its last gate has run and resetting its wire
        (:func:`qsimcells.circuits.reuse_qubits`); ``True``: always (also without a device);
        ``False``: never.
    **backend_options
        Further ``AerSimulator`` options (e.g. ``max_parallel_threads``,
        ``matrix_product_state_max_bond_dimension``). Seeds are not among them: the ``rng`` of
        each call seeds the transpiler and the simulator.
    """

    def __init__(
        self,
        method: str = "automatic",
        noise_model: Any = None,
        device: str = "CPU",
        optimization_level: int = 1,
        qubit_reuse: bool | str = "auto",
        **backend_options: Any,
    ) -> None:
        from qiskit_aer import AerSimulator

        check_choice("method", method, METHODS)
        check_choice("optimization_level", optimization_level, [0, 1, 2, 3])
        self.qubit_reuse = check_qubit_reuse(qubit_reuse)
        seeds = sorted({"seed", "seed_simulator", "seed_transpiler"} & set(backend_options))
        if seeds:  # one name for randomness in qsimcells: rng (a fixed simulator seed would
            # also repeat the same bits in every chunk of qs.sim.simulate)
            raise ValueError(
                f"{seeds[0]}: not an option; pass rng= to sample_bits / simulate, "
                "which seeds Aer's transpiler and simulator for every call"
            )
        devices = AerSimulator().available_devices()
        check_choice("device", device, devices)
        self.method, self.device = method, device
        self.optimization_level = optimization_level
        self.noise_model = noise_model
        self.last_layout: list[int] | None = None
        options = {"method": method, "device": device, **backend_options}
        if noise_model is None:
            self.simulator = AerSimulator(**options)
            self.fake_backend = None
        elif isinstance(noise_model, str):
            from qsimcells.samplers.fake_backends import fake_backend

            try:
                self.fake_backend = fake_backend(noise_model)
            except ValueError as err:
                raise ValueError(str(err).replace("backend:", "noise_model:", 1)) from None
            self.simulator = AerSimulator.from_backend(self.fake_backend, **options)
        else:
            from qiskit_aer.noise import NoiseModel

            if not isinstance(noise_model, NoiseModel):
                raise TypeError(
                    "noise_model: expected None, a qiskit_aer.noise.NoiseModel or a "
                    f"fake backend name, got {type(noise_model).__name__}"
                )
            self.fake_backend = None
            self.simulator = AerSimulator(noise_model=noise_model, **options)

    @property
    def noisy(self) -> bool:
        return self.noise_model is not None

    def supports(self, circuit: Any) -> str | None:
        """Why this sampler cannot take ``circuit`` (``None`` when it can)."""
        try:
            self._fit(circuit)
        except ValueError as err:
            return str(err)
        return None

    def _fit(self, circuit: Any) -> Any:
        """The circuit measured into ``qsimcells_final``, narrowed to the borrowed device by
        qubit reuse when asked or needed."""
        from qsimcells.circuits import fit_to_device

        if self.fake_backend is None:
            return fit_to_device(
                circuit, circuit.num_qubits, "the simulator", qubit_reuse=self.qubit_reuse
            )
        return fit_to_device(
            circuit,
            self.fake_backend.num_qubits,
            self.fake_backend.name,
            qubit_reuse=self.qubit_reuse,
        )

    def sample(self, circuit: Any, shots: int, *, rng: np.random.Generator) -> np.ndarray:
        from qiskit.transpiler import generate_preset_pass_manager
        from qiskit_aer.primitives import SamplerV2

        from qsimcells.circuits import FINAL_REGISTER, final_measurement_map
        from qsimcells.samplers import bitarray_to_bits

        try:
            measured = self._fit(circuit)
        except ValueError as err:
            raise ValueError(f"sampler: 'aer' cannot sample this circuit: {err}") from None
        # measurements are in the circuit before mapping, so routing cannot reorder the clbits
        pass_manager = generate_preset_pass_manager(
            optimization_level=self.optimization_level,
            backend=self.simulator,
            seed_transpiler=int(rng.integers(2**31)),
        )
        compiled = pass_manager.run(measured)
        if self.fake_backend is not None:
            self.last_layout = final_measurement_map(compiled, circuit.num_qubits)
            logger.info(
                "aer: qubit i of the circuit read on device qubit %s of %s",
                self.last_layout,
                self.fake_backend.name,
            )
        sampler = SamplerV2.from_backend(self.simulator, seed=int(rng.integers(2**31)))
        parts = []
        for start in range(0, shots, SHOTS_PER_RUN):
            run_shots = min(SHOTS_PER_RUN, shots - start)
            result = sampler.run([compiled], shots=run_shots).result()
            parts.append(bitarray_to_bits(getattr(result[0].data, FINAL_REGISTER)))
            sampler = SamplerV2.from_backend(self.simulator, seed=int(rng.integers(2**31)))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]
