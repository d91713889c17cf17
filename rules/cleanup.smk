# cleanup: remove every host object the project created (never results/); safe at any time.


rule cleanup:
    params:
        state_dir=STATE_DIR,
    localrule: True
    script:
        "../scripts/cleanup.py"
