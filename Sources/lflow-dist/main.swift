print("lflow-dist")
