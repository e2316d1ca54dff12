def pytest_collection_modifyitems(session, config, items):
    """Run the browser tests last: their transactional database flush then cannot surprise other tests."""
    items.sort(key=lambda item: "tests/browser/" in str(item.fspath).replace("\\", "/"))
