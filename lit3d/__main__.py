import sys

from lit3d.cli import main

if __name__ == "__main__":
    if sys.argv[1:2] in (["tune"], ["export"], ["pixel-mei"], ["rbf-validate"]):  # analyses
        from lit3d.analysis.commands import run

        run(sys.argv[1], sys.argv[2:])
    else:
        main()
