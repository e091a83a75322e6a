from frugal.cli import app

app(prog_name="frugal")
