"""isobench: what isolation costs. Native vs LXC vs KVM, after Felter et al. (ISPASS 2015).

The package holds all logic; the Snakemake rules only declare inputs, outputs and params, and the
thin scripts in ``scripts/`` unpack the ``snakemake`` object and call into here.
"""

PREFIX = "isobench"  # every host object the pipeline creates carries this name prefix
