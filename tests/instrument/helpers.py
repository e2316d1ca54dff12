import ast


def def_line(code: str, qualname: str) -> int:
    """The `def` line of `name` or `Class.method` in `code`."""
    tree = ast.parse(code)
    *classes, name = qualname.split(".")
    body = tree.body
    for cls in classes:
        body = next(n for n in body if isinstance(n, ast.ClassDef) and n.name == cls).body
    return next(n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name).lineno


def suggestion(code: str, qualname: str, label: str, kind: str = "tool", **extra) -> dict:
    return {"type": "decorator", "kind": kind, "line_number": def_line(code, qualname), "function_name": qualname,
            "suggested_label": label, "reason": "calls an LLM", **extra}
