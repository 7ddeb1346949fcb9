from suanwang.cli import main

main(prog_name="suanwang")
