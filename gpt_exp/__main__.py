from gpt_exp.cli import main

main()
