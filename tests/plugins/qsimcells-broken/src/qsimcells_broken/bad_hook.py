from qsimcells.plugins import hookimpl


@hookimpl
def qsimcells_circuit_samplers():
    raise RuntimeError("this plugin's hook always fails")
