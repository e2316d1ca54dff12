import asyncio
from openai import AsyncOpenAI
from pydantic_ai import Agent
from crewai import Crew
from langchain_openai import OpenAIEmbeddings
from langchain_community.vectorstores import FAISS
import instructor
from openai import OpenAI

support = Agent("openai:gpt-4o", system_prompt="Be nice")
emb = OpenAIEmbeddings()
patched = instructor.from_openai(OpenAI())


def ask_support(q):
    return support.run_sync(q).output


def crew_go(crew: Crew):
    return crew.kickoff(inputs={})


def search(docs, q):
    store = FAISS.from_documents(docs, emb)
    retriever = store.as_retriever()
    return retriever.invoke(q)


async def stream_answer(q):
    async with AsyncOpenAI() as client:
        async with client.responses.stream(model="gpt-4o", input=q) as stream:
            async for event in stream:
                print(event)


def extract(text):
    return patched.chat.completions.create(model="gpt-4o", response_model=dict, messages=[])


def local_only(x):
    store = {"a": 1}
    return store.get(x)
