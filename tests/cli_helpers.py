"""What the CLI tests share: running `fastmlp` in-process and reading its one-line error."""
from fastmlp.cli import main


def status_and_err(argv, capsys):
    """(exit status, stderr) of main(argv); fails on a traceback or a message of more than
    one line."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 1, err
    return code, err
