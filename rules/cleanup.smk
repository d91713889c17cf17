# cleanup: remove every host object the project created (never results/); safe at any time.


rule cleanup:
    localrule: True
    script:
        "../scripts/cleanup.py"
