"""The deterministic engine: which functions reach an LLM call, and which of them orchestrate.

A flow-insensitive AST pass, one file at a time:

1. Imports tell which names are LLM SDKs (openai, anthropic, google genai, cohere, mistral,
   litellm, groq, LangChain chat models, …) and which are HTTP clients (requests, httpx, aiohttp).
2. Assignments spread "LLM-ness": `client = OpenAI()`, `self.llm = ChatOpenAI()`,
   `chain = prompt | llm`, `model = genai.GenerativeModel(…)`, `agent = create_agent(llm, …)`.
3. A direct LLM call is a calling verb (`create`, `generate_content`, `invoke`, `completion`, …)
   on such an object or module, or an HTTP POST whose URL names a provider host.
4. Calls between the file's own functions (`helper()`, `self.method()`, `Class.method()`,
   `obj.method()` for `obj = Class()`, functions handed to `map`/`submit`) form a call graph; a
   function *reaches* an LLM when it calls one directly or through that graph.

A reaching function that makes two or more LLM-reaching calls, or makes one in a loop, is an
`agent`; one with a single direct call is a `tool`. A function that only forwards to one other
reaching function is left alone (its callee carries the label), and so is one that merely wraps
or repeats a single agent: labelling it would fold many runs into one.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from .validation import FunctionInfo, Suggestion, functions_index, label_normalise, suggestions_validate

# Provider SDK packages: every name they export counts as an LLM client, class or module.
_SDK_ROOTS = frozenset({
    "openai", "anthropic", "cohere", "mistralai", "litellm", "groq", "together", "ollama", "replicate",
    "vertexai", "fireworks", "voyageai", "dashscope", "zhipuai", "ai21",
    # Agent frameworks whose objects run LLM calls: Agent.run_sync, Crew.kickoff, …
    "pydantic_ai", "crewai", "autogen", "autogen_agentchat", "smolagents", "dspy", "instructor",
})
_SDK_MODULES = frozenset({"google.generativeai", "google.genai", "google.ai.generativelanguage", "huggingface_hub"})
# LangChain / LlamaIndex export prompts, parsers and loaders too: only model-like names count.
_FRAMEWORK_ROOTS = ("langchain", "llama_index")
_FRAMEWORK_MODEL = re.compile(
    r"^(init_chat_model|Chat\w+|\w*(OpenAI|Anthropic|Ollama|VertexAI|Bedrock|Gemini|Cohere|MistralAI|Groq|LLM|Embeddings))$")
_FRAMEWORK_NOT_MODEL = re.compile(r"Prompt|Template|Message|History|Parser|Loader|Splitter")
# Module-level functions that are themselves one LLM call (`from litellm import completion`).
_DIRECT_FUNCTIONS = frozenset({
    "completion", "acompletion", "text_completion", "atext_completion", "embedding", "aembedding",
    "responses", "aresponses", "batch_completion", "image_generation", "chat", "generate", "embed",
})
_VERBS = frozenset({
    "create", "acreate", "parse", "stream", "generate_content", "generate_content_async",
    "generate_content_stream", "send_message", "send_message_async", "send_message_stream", "chat",
    "chat_stream", "complete", "complete_async", "completion", "acompletion", "text_completion",
    "embedding", "aembedding", "embed", "embed_content", "embed_documents", "embed_query",
    "aembed_documents", "aembed_query", "invoke", "ainvoke", "astream", "batch", "abatch", "predict",
    "apredict", "run", "arun", "generate", "agenerate", "rerank", "invoke_model",
    "invoke_model_with_response_stream", "converse", "converse_stream", "query", "aquery",
    "run_sync", "run_stream", "kickoff", "kickoff_async", "initiate_chat", "a_initiate_chat",
})
_HTTP_ROOTS = frozenset({"requests", "httpx", "httpx2", "aiohttp", "urllib3"})
_HTTP_VERBS = frozenset({"post", "request", "stream", "urlopen"})
PROVIDER_HOSTS = (
    "api.openai.com", "openai.azure.com", "api.anthropic.com", "generativelanguage.googleapis.com",
    "aiplatform.googleapis.com", "api.cohere.ai", "api.cohere.com", "api.mistral.ai", "api.groq.com",
    "api.together.xyz", "api.together.ai", "openrouter.ai", "api.fireworks.ai", "api.deepseek.com",
    "api.perplexity.ai", "api.x.ai", "bedrock-runtime", "api-inference.huggingface.co",
    "router.huggingface.co", "api.replicate.com", "api.voyageai.com",
)
_GENERIC_METHODS = frozenset({
    "run", "arun", "__call__", "call", "acall", "invoke", "ainvoke", "execute", "aexecute", "process",
    "handle", "step", "act", "forward", "main", "start", "kickoff",
})
_STRIP_PREFIX = re.compile(r"^(run|call|do|execute|invoke|perform)_")
_STRIP_SUFFIX = re.compile(r"_(agent|tool|step|node|fn|func)$")
_LOOP_CALLERS = re.compile(r"(^|_)(map|imap|starmap|submit|apply_async|gather|map_async)$")

LLM, HTTP = "llm", "http"


@dataclass
class _Site:
    text: str                  # what is called, for the reason
    looped: bool
    target: str | None = None  # a local function's qualname, None for a direct LLM call


@dataclass
class _Analysis:
    info: FunctionInfo
    sites: list[_Site] = field(default_factory=list)


class _Symbols:
    """What the module's names are: LLM SDK things, HTTP clients, constants, local classes."""

    def __init__(self, tree: ast.Module) -> None:
        self.llm_modules: set[str] = set()    # names bound to an LLM SDK module (`openai`, `genai`)
        self.llm_symbols: set[str] = set()    # classes/factories imported from one (`OpenAI`)
        self.direct_functions: set[str] = set()
        self.http_modules: set[str] = set()
        self.http_symbols: set[str] = set()   # `from httpx import Client`, `from requests import post`
        self.constants: dict[str, ast.expr] = {}
        self.module_objects: dict[str, str] = {}        # module-level name -> LLM | HTTP
        self.module_instances: dict[str, str] = {}      # module-level name -> local class
        self.classes: set[str] = set()
        self.functions: set[str] = set()
        self.provider_http: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self._import(alias.name, alias.asname)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    self._import_from(node.module, alias.name, alias.asname or alias.name)
        for stmt in tree.body:
            if isinstance(stmt, ast.ClassDef):
                self.classes.add(stmt.name)
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions.add(stmt.name)
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                self.constants[stmt.targets[0].id] = stmt.value

    @staticmethod
    def _is_sdk(module: str) -> bool:
        root = module.split(".")[0]
        return root in _SDK_ROOTS or any(module == m or module.startswith(m + ".") for m in _SDK_MODULES)

    def _import(self, module: str, asname: str | None) -> None:
        if self._is_sdk(module):
            # `import google.generativeai as genai` binds genai; `import openai.types` binds openai.
            self.llm_modules.add(asname or module.split(".")[0])
        elif module.split(".")[0] in _HTTP_ROOTS:
            self.http_modules.add(asname or module.split(".")[0])

    def _import_from(self, module: str, name: str, bound: str) -> None:
        if self._is_sdk(f"{module}.{name}") or (self._is_sdk(module) and module.split(".")[0] != "google"):
            if module.split(".")[0] in ("litellm", "ollama") and name in _DIRECT_FUNCTIONS:
                self.direct_functions.add(bound)
            elif name[:1].islower() and self._is_sdk(f"{module}.{name}"):
                self.llm_modules.add(bound)   # `from google import genai`, `from openai import resources`
            else:
                self.llm_symbols.add(bound)
        elif module.split(".")[0] in _FRAMEWORK_ROOTS or module.split(".")[0].startswith("langchain_"):
            if _FRAMEWORK_MODEL.match(name) and not _FRAMEWORK_NOT_MODEL.search(name):
                self.llm_symbols.add(bound)
        elif module.split(".")[0] in _HTTP_ROOTS:
            self.http_symbols.add(bound)


class _Scope:
    """Names known inside one function: its own LLM/HTTP objects and local-class instances."""

    def __init__(self, symbols: _Symbols, class_attrs: dict[str, str], class_instances: dict[str, str],
                 class_name: str | None) -> None:
        self.symbols = symbols
        self.class_attrs = class_attrs          # self.<attr> -> LLM | HTTP, for this class
        self.class_instances = class_instances  # self.<attr> -> local class
        self.class_name = class_name
        self.objects: dict[str, str] = {}
        self.instances: dict[str, str] = {}
        self.provider_http: set[str] = set(symbols.provider_http)  # HTTP clients built with a provider base_url

    def kind(self, expr: ast.expr | None) -> str | None:
        """LLM or HTTP when `expr` is (built from) an LLM or HTTP client, else None."""
        if expr is None:
            return None
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
            return LLM if LLM in (self.kind(expr.left), self.kind(expr.right)) else None
        if isinstance(expr, ast.Call):
            inner = self.kind(expr.func)
            if inner:
                return inner
            if isinstance(expr.func, ast.Name) and expr.func.id in self.symbols.classes | self.symbols.functions:
                return None  # the file's own classes and functions are followed through the call graph
            # A factory or wrapper handed an LLM object is one too: create_agent(llm, tools), LLMChain(llm=llm).
            for arg in [*expr.args, *(k.value for k in expr.keywords)]:
                if self.kind(arg) == LLM:
                    return LLM
            return None
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id in ("self", "cls"):
            return self.class_attrs.get(expr.attr)
        if isinstance(expr, ast.Attribute | ast.Subscript | ast.Await | ast.Starred):
            return self.kind(expr.value)
        if isinstance(expr, ast.Name):
            s = self.symbols
            if expr.id in self.objects:
                return self.objects[expr.id]
            if expr.id in s.llm_modules or expr.id in s.llm_symbols or expr.id in s.direct_functions:
                return LLM
            if expr.id in s.http_modules or expr.id in s.http_symbols:
                return HTTP
            return s.module_objects.get(expr.id)
        return None

    def instance_of(self, expr: ast.expr) -> str | None:
        """The local class an expression is an instance of: `Writer()`, `w` after `w = Writer()`, `self.w`."""
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id in self.symbols.classes:
            return expr.func.id
        if isinstance(expr, ast.Name):
            return self.instances.get(expr.id) or self.symbols.module_instances.get(expr.id)
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id == "self":
            return self.class_instances.get(expr.attr)
        return None

    def learn(self, target: ast.expr, value: ast.expr, into_self: dict[str, str] | None = None,
              into_self_instances: dict[str, str] | None = None) -> None:
        kind = None if _is_llm_call(value, self) else self.kind(value)
        cls = self.instance_of(value)
        provider_base = kind == HTTP and isinstance(value, ast.Call) and any(
            _names_provider(_string_value(k.value, self.symbols)) for k in value.keywords if k.arg == "base_url")
        for name in _target_names(target):
            if provider_base:
                self.provider_http.add(name if isinstance(name, str) else ast.unparse(name))
            if isinstance(name, str):
                if kind:
                    self.objects[name] = kind
                if cls:
                    self.instances[name] = cls
            elif into_self is not None and into_self_instances is not None:
                if kind:
                    into_self[name.attr] = kind
                if cls:
                    into_self_instances[name.attr] = cls


def _target_names(target: ast.expr) -> list[str | ast.Attribute]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
        return [target]
    if isinstance(target, ast.Tuple | ast.List):
        return [n for elt in target.elts for n in _target_names(elt)]
    return []


def _string_value(expr: ast.expr | None, symbols: _Symbols, depth: int = 0) -> str:
    """The constant text of a URL expression: literals, f-strings, `+`, module constants."""
    if expr is None or depth > 5:
        return ""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    if isinstance(expr, ast.JoinedStr):
        return "".join(_string_value(v, symbols, depth + 1) for v in expr.values)
    if isinstance(expr, ast.FormattedValue):
        return _string_value(expr.value, symbols, depth + 1)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        return _string_value(expr.left, symbols, depth + 1) + _string_value(expr.right, symbols, depth + 1)
    if isinstance(expr, ast.Name) and expr.id in symbols.constants:
        return _string_value(symbols.constants[expr.id], symbols, depth + 1)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "format":
        return _string_value(expr.func.value, symbols, depth + 1)
    return ""


def _names_provider(text: str) -> bool:
    return any(host in text for host in PROVIDER_HOSTS)


def _is_llm_call(call: ast.expr, scope: _Scope) -> bool:
    if isinstance(call, ast.Await):
        call = call.value
    if not isinstance(call, ast.Call):
        return False
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in scope.symbols.direct_functions
    if not isinstance(func, ast.Attribute):
        return False
    receiver = scope.kind(func.value)
    if receiver == LLM and func.attr in _VERBS:
        return True
    if receiver == HTTP and func.attr in _HTTP_VERBS:
        url_args = call.args[1:2] if func.attr in ("request", "stream") else call.args[:1]
        url_args += [k.value for k in call.keywords if k.arg in ("url", "base_url")]
        if any(_names_provider(_string_value(a, scope.symbols)) for a in url_args):
            return True
        # A client built with a provider base_url: every post on it is an LLM call.
        return _http_client_has_provider_base(func.value, scope)
    return False


def _http_client_has_provider_base(expr: ast.expr, scope: _Scope) -> bool:
    return ast.unparse(expr) in scope.provider_http


class _FunctionWalker(ast.NodeVisitor):
    """Collects one function's LLM call sites and calls to the file's own functions."""

    def __init__(self, scope: _Scope, functions: dict[str, FunctionInfo], analysis: _Analysis) -> None:
        self.scope = scope
        self.functions = functions
        self.analysis = analysis
        self.loop_depth = 0

    # Loops: the body repeats; the iterable and the else-branch run once.
    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        self.loop_depth += 1
        for stmt in node.body:
            self.visit(stmt)
        self.loop_depth -= 1
        for stmt in node.orelse:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_While(self, node: ast.While) -> None:
        self.loop_depth += 1
        self.visit(node.test)
        for stmt in node.body:
            self.visit(stmt)
        self.loop_depth -= 1
        for stmt in node.orelse:
            self.visit(stmt)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> None:
        self.loop_depth += 1
        self.generic_visit(node)
        self.loop_depth -= 1

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        for target in node.targets:
            self._learn(target, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.generic_visit(node)
        if node.value is not None:
            self._learn(node.target, node.value)

    def visit_withitem(self, node: ast.withitem) -> None:
        self.generic_visit(node)
        if node.optional_vars is not None:
            self._learn(node.optional_vars, node.context_expr)

    def _learn(self, target: ast.expr, value: ast.expr) -> None:
        self.scope.learn(target, value)

    def visit_Call(self, node: ast.Call) -> None:
        looped = self.loop_depth > 0
        target = self._local_target(node.func)
        if target:
            self.analysis.sites.append(_Site(text=target, looped=looped, target=target))
        elif _is_llm_call(node, self.scope):
            self.analysis.sites.append(_Site(text=_short(node.func), looped=looped))
        # Local functions handed to another call: map(summarise, docs), pool.submit(fetch, url).
        caller = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for arg in node.args:
            if not isinstance(arg, ast.Call):
                target = self._local_target(arg)
                if target:
                    self.analysis.sites.append(_Site(text=target, looped=looped or bool(_LOOP_CALLERS.search(caller)),
                                                     target=target))
        self.generic_visit(node)

    def _local_target(self, func: ast.expr) -> str | None:
        if isinstance(func, ast.Name):
            if func.id in self.functions:
                return func.id
            if func.id in self.scope.symbols.classes and f"{func.id}.__call__" in self.functions:
                return None  # instantiation, not a call of __call__
            return None
        if not isinstance(func, ast.Attribute):
            return None
        owner: str | None = None
        if isinstance(func.value, ast.Name) and func.value.id in ("self", "cls"):
            owner = self.scope.class_name
        elif isinstance(func.value, ast.Name) and func.value.id in self.scope.symbols.classes:
            owner = func.value.id
        else:
            owner = self.scope.instance_of(func.value)
        if owner is None:
            return None
        for qualname, info in self.functions.items():
            if info.class_name == owner and qualname.rsplit(".", 1)[-1] == func.attr:
                return qualname
        return None


def _short(expr: ast.expr) -> str:
    text = ast.unparse(expr)
    return text if len(text) <= 60 else text[:57] + "..."


def _class_attributes(tree: ast.Module,
                      symbols: _Symbols) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """self.<attr> assignments in every class: which attributes hold LLM/HTTP clients or local instances."""
    kinds: dict[str, dict[str, str]] = {}
    instances: dict[str, dict[str, str]] = {}
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        attrs: dict[str, str] = {}
        attr_instances: dict[str, str] = {}
        for _ in range(2):  # twice, so `self.chain = self.prompt | self.llm` sees self.llm
            for method in (n for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
                scope = _Scope(symbols, attrs, attr_instances, cls.name)
                _learn_parameters(method, scope)
                for node in ast.walk(method):
                    if isinstance(node, ast.Assign):
                        for target in node.targets:
                            scope.learn(target, node.value, attrs, attr_instances)
                    elif isinstance(node, ast.AnnAssign) and node.value is not None:
                        scope.learn(node.target, node.value, attrs, attr_instances)
                symbols.provider_http.update(scope.provider_http)
            # Class-level attributes: `llm = ChatOpenAI()` in the class body.
            scope = _Scope(symbols, attrs, attr_instances, cls.name)
            for stmt in cls.body:
                if isinstance(stmt, ast.Assign):
                    for target in stmt.targets:
                        if isinstance(target, ast.Name):
                            kind = scope.kind(stmt.value)
                            if kind:
                                attrs[target.id] = kind
        kinds[cls.name] = attrs
        instances[cls.name] = attr_instances
    return kinds, instances


def _learn_parameters(func: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope) -> None:
    """Annotated parameters: `client: OpenAI`, `llm: BaseChatModel | None`."""
    args = func.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
        annotation = arg.annotation
        if annotation is None:
            continue
        parts = [annotation]
        if isinstance(annotation, ast.BinOp):
            parts = [annotation.left, annotation.right]
        elif isinstance(annotation, ast.Subscript):
            parts = [annotation.slice] if not isinstance(annotation.slice, ast.Tuple) else list(annotation.slice.elts)
        for part in parts:
            kind = scope.kind(part)
            if kind:
                scope.objects[arg.arg] = kind
                break
        if isinstance(annotation, ast.Name) and annotation.id in scope.symbols.classes:
            scope.instances[arg.arg] = annotation.id


def _module_objects(tree: ast.Module, symbols: _Symbols) -> None:
    for _ in range(2):  # `llm = ChatOpenAI()` then `chain = prompt | llm`
        scope = _Scope(symbols, {}, {}, None)
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for target in targets:
                    scope.learn(target, stmt.value)
        symbols.module_objects.update(scope.objects)
        symbols.module_instances.update(scope.instances)
        symbols.provider_http.update(scope.provider_http)


def _label(info: FunctionInfo) -> str:
    name = info.qualname.rsplit(".", 1)[-1]
    if info.class_name and name in _GENERIC_METHODS:
        base = label_normalise(info.class_name)[1]
        stripped = re.sub(r"_(agent|tool)$", "", base)
        return stripped or base
    base = label_normalise(name)[1]
    stripped = _STRIP_SUFFIX.sub("", _STRIP_PREFIX.sub("", base))
    return stripped or base or "function"


# The analysis walks expressions recursively (NodeVisitor, ast.unparse: a few frames per level). Python parses
# far deeper chains than that can walk (`a.a.a…`, `1+1+…` thousands long in a few KB), so deeper subexpressions
# are read as an opaque constant: the file is still analysed, only calls buried that deep go unseen.
MAX_EXPR_DEPTH = 100


def _prune_deep_expressions(tree: ast.Module, limit: int = MAX_EXPR_DEPTH) -> None:
    """Replace, in place, every expression nested more than `limit` expressions deep. Iterative."""
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        for name, value in ast.iter_fields(node):
            children = value if isinstance(value, list) else [value]
            for i, child in enumerate(children):
                if not isinstance(child, ast.AST):
                    continue
                child_depth = depth + 1 if isinstance(child, ast.expr) else depth
                if isinstance(child, ast.expr) and child_depth > limit:
                    opaque = ast.copy_location(ast.Constant(value=None), child)
                    if isinstance(value, list):
                        value[i] = opaque
                    else:
                        setattr(node, name, opaque)
                    continue
                stack.append((child, child_depth))


def static_suggest(*, tree: ast.Module) -> list[Suggestion]:
    """Suggestions for the functions of a parsed module, validated like any engine's.

    Expressions nested deeper than MAX_EXPR_DEPTH are pruned from `tree` first (in place).
    """
    _prune_deep_expressions(tree)
    symbols = _Symbols(tree)
    _module_objects(tree, symbols)
    class_kinds, class_instances = _class_attributes(tree, symbols)
    index = functions_index(tree)
    functions = {info.qualname: info for info in index}
    analyses: dict[str, _Analysis] = {}
    for info in index:
        cls = info.class_name
        scope = _Scope(symbols, class_kinds.get(cls or "", {}), class_instances.get(cls or "", {}), cls)
        _learn_parameters(info.node, scope)
        analysis = _Analysis(info=info)
        walker = _FunctionWalker(scope, functions, analysis)
        for stmt in info.node.body:
            walker.visit(stmt)
        analyses[info.qualname] = analysis

    reaches = {q for q, a in analyses.items() if any(s.target is None for s in a.sites)}
    changed = True
    while changed:
        changed = False
        for qualname, analysis in analyses.items():
            if qualname not in reaches and any(s.target in reaches for s in analysis.sites):
                reaches.add(qualname)
                changed = True

    kinds: dict[str, str | None] = {}

    def classify(qualname: str, stack: frozenset[str]) -> str | None:
        if qualname in kinds:
            return kinds[qualname]
        analysis = analyses[qualname]
        sites = [s for s in analysis.sites if s.target is None or (s.target in reaches and s.target != qualname)]
        kind: str | None = None
        direct = [s for s in sites if s.target is None]
        local_targets = {s.target for s in sites if s.target}
        if len(sites) >= 2 or any(s.looped for s in sites):
            kind = "agent"
            if not direct and len(local_targets) == 1:
                (only,) = local_targets
                callee = analyses[only].info
                callee_kind = "agent" if callee.instrumented else (
                    classify(only, stack | {qualname}) if only not in stack else None)
                if callee_kind == "agent":
                    kind = None  # wraps or repeats one agent: the callee carries the label
        elif len(direct) == 1:
            kind = "tool"
        kinds[qualname] = kind
        return kind

    raw: list[dict[str, object]] = []
    for qualname, analysis in analyses.items():
        info = analysis.info
        if qualname not in reaches or info.instrumented:
            continue
        name = qualname.rsplit(".", 1)[-1]
        if name.startswith("__") and name != "__call__":
            continue
        kind = classify(qualname, frozenset())
        if kind is None:
            continue
        raw.append({"type": "decorator", "kind": kind, "line_number": info.def_line, "function_name": qualname,
                    "suggested_label": _label(info), "reason": _reason(kind, analysis, reaches)})
    suggestions, _ = suggestions_validate(tree=tree, raw=raw)
    return suggestions


def _reason(kind: str, analysis: _Analysis, reaches: set[str]) -> str:
    sites = [s for s in analysis.sites if s.target is None or s.target in reaches]
    names = list(dict.fromkeys(f"{s.text}()" for s in sites))
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    if kind == "tool":
        return f"Makes one LLM call: {shown}."
    looped = [s for s in sites if s.looped]
    if looped:
        return f"Calls the LLM in a loop ({looped[0].text}()); LLM-reaching calls: {shown}."
    return f"Orchestrates {len(sites)} LLM-reaching calls: {shown}."
