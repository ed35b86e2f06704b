import sys

from lit3d.cli import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["tune"]:  # tuning sweeps of a fitted stimulus (lit3d.analysis)
        from lit3d.analysis.tune_cli import run

        run(sys.argv[2:])
    else:
        main()
