import asyncio
import os

import httpx
import litellm
from google import genai
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI
from litellm import acompletion
from llmobserve import agent as llmo_agent

gemini = genai.Client()
llm = ChatOpenAI(model="gpt-4o-mini")
prompt = ChatPromptTemplate.from_messages([("user", "{q}")])
chain = prompt | llm | StrOutputParser()
mistral_http = httpx.Client(base_url="https://api.mistral.ai/v1", timeout=30)
BASE = os.environ.get("BASE", "https://api.anthropic.com")


def render(q: str) -> str:
    return prompt.invoke({"q": q}).to_string()


def ask_chain(q: str) -> str:
    return chain.invoke({"q": q})


def ask_gemini(q: str) -> str:
    return gemini.models.generate_content(model="gemini-2.5-flash", contents=q).text


async def ask_litellm(q: str) -> str:
    response = await acompletion(model="gpt-4o-mini", messages=[{"role": "user", "content": q}])
    return response.choices[0].message.content


def ask_mistral(q: str) -> dict:
    return mistral_http.post("/chat/completions", json={"model": "mistral-small", "messages": []}).json()


def fetch_page(url: str) -> str:
    return httpx.get(url).text


async def fan_out(questions: list[str]) -> list[str]:
    return await asyncio.gather(*(ask_litellm(q) for q in questions))


class Router:
    model = ChatOpenAI(model="gpt-4o")

    def route(self, q: str) -> str:
        return self.model.invoke(q).content

    def answer(self, q: str) -> str:
        kind = self.route(q)
        if kind == "search":
            return ask_gemini(fetch_page(q))
        return ask_chain(q)

    def describe(self) -> str:
        return "router"


@llmo_agent("legacy")
def legacy(q: str) -> str:
    return litellm.completion(model="gpt-4o", messages=[]).choices[0].message.content


def embed_all(texts: list[str]) -> list:
    vectors = []
    while texts:
        vectors.append(litellm.embedding(model="text-embedding-3-small", input=[texts.pop()]))
    return vectors


def main() -> None:
    router = Router()
    print(router.answer("hello"))
