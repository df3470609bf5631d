from lasso_rpc.cli import main

main()
