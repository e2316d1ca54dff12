"""A research crew: a planner, a researcher, a writer and an editor around OpenAI and Anthropic."""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx
import requests
from openai import OpenAI

client = OpenAI()
claude = anthropic.Anthropic()
GROQ_URL = "https://api.groq.com/openai/v1/chat/completions"
MODEL = "gpt-4o-mini"


def format_prompt(topic: str, notes: list[str]) -> str:
    """Pure helper: never an LLM call."""
    return f"Write about {topic} using:\n" + "\n".join(notes)


def parse_json(text: str) -> dict:
    return json.loads(text)


def web_search(query: str) -> list[str]:
    # A plain HTTP call to a search API, not an LLM provider.
    response = requests.get("https://search.example.com", params={"q": query}, timeout=10)
    return response.json()["results"]


def plan_topics(subject: str) -> list[str]:
    response = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"List subtopics of {subject}"}]
    )
    return parse_json(response.choices[0].message.content)["topics"]


def summarise(text: str) -> str:
    message = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=300, messages=[{"role": "user", "content": text}]
    )
    return message.content[0].text


def classify_with_groq(text: str) -> str:
    response = httpx.post(GROQ_URL, json={"model": "llama-3.1-8b", "messages": []}, timeout=30)
    return response.json()["choices"][0]["message"]["content"]


class Researcher:
    def __init__(self, llm_client: OpenAI) -> None:
        self.llm = llm_client

    def run(self, topic: str) -> list[str]:
        results = web_search(topic)
        return [summarise(r) for r in results]


class Writer:
    def __init__(self) -> None:
        self.client = OpenAI()

    def draft(self, topic: str, notes: list[str]) -> str:
        prompt = format_prompt(topic, notes)
        response = self.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}])
        return response.choices[0].message.content

    def polish(self, text: str) -> str:
        return self._rewrite(text)

    def _rewrite(self, text: str) -> str:
        response = self.client.responses.create(model=MODEL, input=text)
        return response.output_text


def review(draft: str) -> str:
    verdict = classify_with_groq(draft)
    if verdict == "rewrite":
        return summarise(draft)
    return draft


def run_pipeline(subject: str) -> list[str]:
    researcher = Researcher(client)
    writer = Writer()
    articles = []
    for topic in plan_topics(subject):
        notes = researcher.run(topic)
        articles.append(writer.polish(writer.draft(topic, notes)))
    return articles


def summarise_all(texts: list[str]) -> list[str]:
    with ThreadPoolExecutor() as pool:
        return list(pool.map(summarise, texts))


def main() -> None:
    for subject in ["solar", "wind"]:
        print(run_pipeline(subject))


def count_words(text: str) -> int:
    return len(text.split())


if __name__ == "__main__":
    main()
