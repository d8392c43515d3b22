import subprocess
import sys

from vkeci import __version__
from vkeci.cli import main


def test_version(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"vkeci {__version__}"


def test_launcher_and_module_behave_like_the_console_script():
    for argv in ([sys.executable, "vkeci.py", "version"], [sys.executable, "-m", "vkeci", "version"]):
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        assert out.strip() == f"vkeci {__version__}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_only_the_chosen_commands_module_is_imported():
    code = "import sys; from vkeci.cli import main; main(['version']); print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "vkeci.commands.run" not in out and "vkeci.commands.check" not in out and "vkeci.daemon" not in out
