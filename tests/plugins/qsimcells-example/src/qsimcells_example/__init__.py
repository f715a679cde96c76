"""Example qsimcells plugin: a circuit sampler written the way a third party would."""
