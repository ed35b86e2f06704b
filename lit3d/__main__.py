import sys

from lit3d.cli import main

#: Subcommands besides LightningCLI's fit/validate/test/predict (lit3d.analysis.commands).
ANALYSES = ("tune", "export", "pixel-mei", "rbf-validate", "report")

if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] in ANALYSES:  # analyses of fitted stimuli and runs
        from lit3d.analysis.commands import run

        run(sys.argv[1], sys.argv[2:])
    else:
        main()
