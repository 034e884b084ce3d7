from jfv.main import run

run()
