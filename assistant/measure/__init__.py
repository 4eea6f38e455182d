"""Everything that measures: the benchmarks (`hyperalign bench ...`) and the safety evaluation
(`hyperalign eval safety`), with the synthetic data and stand-in models they run on.

Only the command line imports this package: nothing the app runs depends on a measurement.
"""
