"""Server-rendered dashboards: KPIs, charts and the tables behind them."""
