"""Circuit-level helpers: gate-set analysis of Qiskit circuits, measuring every qubit in logical
order, and qubit reuse for devices narrower than a design."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from qiskit import QuantumCircuit

__all__ = [
    "FINAL_REGISTER",
    "QUBIT_REUSE",
    "check_qubit_reuse",
    "exact_sampling_obstacle",
    "final_measurement_map",
    "fit_to_device",
    "is_exactly_sampleable",
    "measure_every_qubit",
    "reuse_qubits",
    "reused_width",
]

#: Name of the classical register :func:`measure_every_qubit` adds.
FINAL_REGISTER = "qsimcells_final"

from .reuse import (  # noqa: E402  (reuse.py reads FINAL_REGISTER from here)
    QUBIT_REUSE,
    check_qubit_reuse,
    fit_to_device,
    reuse_qubits,
    reused_width,
)


def exact_sampling_obstacle(circuit: QuantumCircuit) -> str | None:
    """Why ``circuit`` has no exact classical sampling path, or ``None`` when it has one.

    See :mod:`qsimcells.samplers.exact` for the rule: a qubit may be rotated freely until it is
    first used as a control; after that only bit flips and phases may touch it.
    """
    from ..samplers.exact import ExactSampler

    return ExactSampler().supports(circuit)


def is_exactly_sampleable(circuit: QuantumCircuit) -> bool:
    """Whether the builtin ``exact`` sampler can sample ``circuit`` (see
    :func:`exact_sampling_obstacle`)."""
    return exact_sampling_obstacle(circuit) is None


def measure_every_qubit(circuit: QuantumCircuit) -> QuantumCircuit:
    """A copy of ``circuit`` whose final measurements are replaced by one register
    :data:`FINAL_REGISTER` with clbit ``i`` measuring qubit ``i``.

    Hardware and simulator samplers run this copy: the per-cell-type registers of a design (or
    no measurements at all) become one register in logical qubit order, and because the
    measurements are added *before* transpilation, the transpiler carries them through any
    layout and routing, so clbit ``i`` still reads the design's qubit ``i`` on the device.
    Mid-circuit measurements and resets are kept.
    """
    from qiskit import ClassicalRegister

    if any(creg.name == FINAL_REGISTER for creg in circuit.cregs):
        raise ValueError(f"circuit: already has a classical register named {FINAL_REGISTER!r}")
    measured = circuit.remove_final_measurements(inplace=False)
    register = ClassicalRegister(circuit.num_qubits, FINAL_REGISTER)
    measured.add_register(register)
    measured.barrier()
    measured.measure(measured.qubits, register)
    return measured


def final_measurement_map(compiled: QuantumCircuit, n_qubits: int) -> list[int]:
    """Physical qubit measured into each clbit of :data:`FINAL_REGISTER` of a transpiled
    circuit: where gene ``i`` was read on the device (with qubit reuse, several genes share one).

    Parameters
    ----------
    compiled
        A circuit measured by :func:`measure_every_qubit` or :func:`reuse_qubits`, after
        transpilation to a device.
    n_qubits
        Qubits of the design (clbits of the register).

    Returns
    -------
    list of int
        Entry ``i``: the physical qubit measured into clbit ``i``.

    Raises
    ------
    RuntimeError
        When the transpiled circuit does not measure every clbit of the register exactly once
        (the bits could not be mapped back to logical qubits).
    """
    if not any(c.name == FINAL_REGISTER and c.size == n_qubits for c in compiled.cregs):
        raise RuntimeError(
            f"the transpiled circuit lost its register {FINAL_REGISTER!r} of "
            f"{n_qubits} clbits; cannot map bits back to qubits"
        )
    counts = [0] * n_qubits
    physical = [-1] * n_qubits
    for instruction in compiled.data:
        if instruction.operation.name != "measure":
            continue
        for register, index in compiled.find_bit(instruction.clbits[0]).registers:
            if register.name == FINAL_REGISTER:
                counts[index] += 1
                physical[index] = compiled.find_bit(instruction.qubits[0]).index
    wrong = {i: c for i, c in enumerate(counts) if c != 1}
    if wrong:
        raise RuntimeError(
            f"the transpiled circuit measures clbits of {FINAL_REGISTER!r} the "
            f"wrong number of times (clbit: count) {wrong}; each must be measured "
            "exactly once to map bits back to qubits"
        )
    return physical
