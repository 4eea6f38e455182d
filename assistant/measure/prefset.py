"""A development set for recall of things said once, in LoCoMo's format: `hyperalign bench make-recall-set`.

LoCoMo's questions mostly repeat the words of the turn they ask about, so lexical recall does well on
it. This product's users more often state a preference or a fact once, in passing, among unrelated
talk ("I'm vegan, by the way"), and ask much later for something where it matters, in other words
("any restaurant ideas for Friday?"). This set is made of exactly that:

- each person has a handful of facts (diet, travel, health, family, work, money, places, plans,
  past trips...), each stated once, often tucked into a message about something else;
- many unrelated turns surround them, some sharing the later questions' everyday words ("dinner",
  "weekend", "ideas") without the fact, which is what misleads a lexical match;
- the assistant often restates what it was told ("Noted: no dairy"), as real assistants do: the
  evidence is the person's own turn, so a restating reply that outranks it costs a slot;
- each question asks for something the fact bears on, in words the statement does not use.

Everything comes from the templates and word lists below (written for this file, no copied data)
and a seed, so a set is reproduced exactly by its seed. Evidence is the person's statement turn.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

SINGLE_HOP = 4  # LoCoMo's category number


@dataclass(frozen=True)
class Fact:
    topic: str
    said: tuple[str, ...]  # first person, as mentioned in passing
    asked: tuple[str, ...]  # a later request the fact bears on, in other words
    echo: str  # how an assistant restates it
    answer: str


FACTS = (
    Fact("vegan", ("I went fully vegan last spring, so no meat, fish, eggs or dairy for me.",
                   "Since I stopped eating anything from animals a year ago, cooking got more interesting.",
                   "I'm vegan, which makes office lunches a bit of a hunt."),
         ("Any restaurant ideas for Friday night?", "What could I bring to a potluck this weekend?",
          "Suggest a quick dinner I can make after work."),
         "Got it, plant-based only.", "vegan"),
    Fact("nut allergy", ("My peanut allergy is the serious kind, I carry an epinephrine pen everywhere.",
                         "Tree nuts and peanuts both put me in hospital once, so I read every label."),
         ("Which snacks should I pack for a long hike?", "What dessert should I order at the Thai place?",
          "Can you recommend a granola recipe?"),
         "Understood, I'll keep nuts out of anything I suggest.", "severe nut allergy"),
    Fact("lactose", ("Milk and cheese wreck my stomach, I'm lactose intolerant.",
                     "Ever since my twenties dairy has disagreed with me badly."),
         ("What should I have for breakfast tomorrow?", "Which pizza toppings would you pick for me?"),
         "Noted: no dairy.", "lactose intolerant"),
    Fact("gluten", ("I have coeliac disease, so wheat, barley and rye are off the table.",
                    "My doctor confirmed coeliac last year and bread is out for good."),
         ("Where should we go for a birthday lunch?", "What could I bake for my niece's party?"),
         "Noted, gluten-free it is.", "coeliac"),
    Fact("halal", ("I keep halal, so pork and alcohol never end up in my cooking.",),
         ("Give me a recipe for a fancy dinner for my in-laws.", "What's a good marinade for a barbecue?"),
         "Understood, halal only.", "halal"),
    Fact("no flying", ("Long flights give me panic attacks, so I avoid anything over two hours in the air.",
                       "Honestly I haven't been on a plane in six years and I don't plan to."),
         ("Where could I go for a week off in March?", "How should I get to the conference in Lisbon?",
          "Plan me a honeymoon somewhere warm."),
         "Understood, I'll keep trips on the ground.", "avoids flying"),
    Fact("motion sickness", ("Boats and winding roads make me horribly seasick.",
                             "I get carsick on mountain roads, even as the driver sometimes."),
         ("What day trips would you suggest near Split?", "Any ideas for a weekend on the coast?"),
         "Noted, nothing bumpy or at sea.", "motion sickness"),
    Fact("bad knee", ("I tore a ligament in my left knee skiing and stairs are still hard.",
                      "My knee surgery was in January and I can't do much impact yet."),
         ("Recommend a workout routine for me.", "What sightseeing would you suggest in Porto?",
          "Which sport could I pick up this autumn?"),
         "Got it, low-impact only for now.", "knee injury"),
    Fact("wheelchair", ("I use a wheelchair since the accident, so steps and cobbles are a real obstacle.",),
         ("Which museums in Rome are worth a visit?", "Suggest a venue for my team's offsite."),
         "Noted, step-free places only.", "uses a wheelchair"),
    Fact("cat allergy", ("Cats make my eyes swell shut within minutes, I'm badly allergic.",),
         ("Should I get a pet for my flat?", "Can you find me a cosy café to work from?"),
         "Understood, no cats.", "allergic to cats"),
    Fact("dog", ("My border collie Pixel needs two long walks a day or she chews the sofa.",
                 "I adopted a big rescue dog in June and she comes everywhere with me."),
         ("Where should we stay on holiday in Cornwall?", "What kind of flat should I look for?"),
         "Nice, a dog in the family.", "has a dog"),
    Fact("kids", ("With twins aged four, my evenings belong to bath time and bedtime stories.",
                  "My two little ones are in kindergarten, so my days end at five sharp."),
         ("What should we do on Saturday?", "Plan a relaxing holiday for me.",
          "Can you suggest a car to buy?"),
         "Noted, a family with small children.", "has young twins"),
    Fact("newborn", ("We just had a baby girl three weeks ago and I'm running on no sleep.",),
         ("How can I get fitter this month?", "What should I cook this week?"),
         "Congratulations on the baby!", "newborn at home"),
    Fact("night shift", ("I work nights at the hospital, ten at night to six in the morning.",
                         "My shifts are overnight so I sleep through most mornings."),
         ("When is the best time to go to the gym?", "Help me plan a study routine for my exam."),
         "Got it, you sleep in the daytime.", "works night shifts"),
    Fact("tight budget", ("Money is really tight since I lost my job, every euro counts right now.",
                          "I'm saving every penny for a deposit on a flat, so spending is frozen."),
         ("What should I get my sister for her birthday?", "Where should we go for a weekend away?",
          "Which laptop should I buy for university?"),
         "Understood, keeping costs low.", "on a tight budget"),
    Fact("no car", ("I sold my car last year and get around by bike and tram.",
                    "I don't have a driving licence, never learned."),
         ("How should I do my big grocery shop?", "Plan a day out in the countryside for me."),
         "Noted, no car.", "has no car"),
    Fact("diabetic", ("I have type 1 diabetes, so I count carbs at every meal.",
                      "Since my diabetes diagnosis I watch sugar very closely."),
         ("What dessert could I make for the party?", "Which cocktails should I order at the wedding?"),
         "Noted, carbs and sugar matter.", "type 1 diabetes"),
    Fact("pregnant", ("I'm five months pregnant with our first, so there's a lot I'm avoiding.",),
         ("Which cheeses should I put on a board for guests?", "Recommend a spa day for me.",
          "What can I do to relax after work?"),
         "Congratulations! Noted.", "pregnant"),
    Fact("migraine", ("Bright flashing lights trigger my migraines, sometimes for two days.",),
         ("Should I go to the festival next month?", "What's a fun night out in Berlin?"),
         "Noted, no strobe lights.", "light-triggered migraines"),
    Fact("learning spanish", ("I've been learning Spanish on my lunch breaks for eight months.",
                              "My goal this year is to get conversational in Spanish."),
         ("What podcasts would you recommend?", "Which novel should I read next?",
          "Where should I travel this summer?"),
         "¡Qué bien! Noted.", "learning Spanish"),
    Fact("kyoto trip", ("Last autumn I spent two weeks in Kyoto, the temples and the moss gardens were unreal.",
                        "The highlight of my year was walking the Philosopher's Path in Kyoto in November."),
         ("Remember the holiday in Japan I described? What was my favourite part?",
          "Where did I go on that trip last autumn?"),
         "That sounds like a wonderful trip.", "Kyoto trip"),
    Fact("iceland trip", ("In February we drove the ring road in Iceland and saw the northern lights twice.",),
         ("What was that winter road trip I did with my partner?",
          "Which country did I see the aurora in?"),
         "What a trip!", "Iceland road trip"),
    Fact("marathon", ("I'm training for the Berlin marathon in September, four runs a week.",),
         ("How should I plan my meals for the next months?", "What should I do this Sunday morning?"),
         "Great goal, good luck with the training.", "training for a marathon"),
    Fact("piano", ("I started piano lessons at forty and practise every evening.",),
         ("What should I do with my free hour tonight?", "Suggest a gift I'd like for myself."),
         "Lovely, a new instrument.", "learning piano"),
    Fact("introvert", ("Big parties drain me, I much prefer one friend and a quiet table.",
                       "Crowds wear me out fast, I'm an introvert through and through."),
         ("How should I celebrate turning thirty?", "What should I do on New Year's Eve?"),
         "Noted, quiet over crowded.", "introvert"),
    Fact("early riser", ("I'm up at five every day, my best hours are before breakfast.",),
         ("When should I schedule my writing time?", "When should I book the team call?"),
         "Noted, mornings are your time.", "early riser"),
    Fact("remote work", ("I work fully remote for a company in Toronto, so my hours are odd.",),
         ("When could we have our weekly catch-up?", "How can I meet people in a new city?"),
         "Got it, remote with an overseas team.", "works remotely for Toronto"),
    Fact("moving to oslo", ("We're moving to Oslo in August for my partner's new job.",),
         ("What should I pack for the coming winter?", "Which language course should I sign up for?"),
         "Exciting move!", "moving to Oslo"),
    Fact("allotment", ("I rent a small allotment and grow tomatoes, beans and far too many courgettes.",),
         ("What should I cook with what's in season?", "What could I do this Saturday morning?"),
         "A gardener, nice.", "keeps an allotment"),
    Fact("sober", ("I stopped drinking alcohol two years ago and I'm proud of it.",),
         ("What should I bring to the dinner party?", "Suggest a bar for my birthday."),
         "Noted, alcohol-free.", "does not drink"),
    Fact("caring for mother", ("My mother moved in with us after her stroke and I look after her most days.",),
         ("Can I take a holiday this year?", "How do I find time for myself?"),
         "That's a lot to carry, noted.", "cares for their mother"),
    Fact("colour blind", ("I'm red-green colour blind, charts with those colours are useless to me.",),
         ("How should I design the slides for Monday?", "Which theme should I use for my dashboard?"),
         "Noted, I'll avoid red and green.", "colour blind"),
    Fact("hates coriander", ("Coriander tastes like soap to me, one leaf ruins the dish.",),
         ("What should I order at the Mexican place?", "Give me a recipe for a curry."),
         "Noted, no coriander.", "dislikes coriander"),
    Fact("student", ("I'm in my final year of a nursing degree, exams start in May.",),
         ("How should I spend my spring?", "Should I take on a part-time job?"),
         "Good luck with the final year.", "final-year nursing student"),
)

# Unrelated things a person asks about; several share the everyday words of the later questions
# ("dinner", "weekend", "ideas", "trip", "birthday") without the fact behind them.
FILLER = (
    "How does compound interest actually work?", "What's the difference between a virus and a bacterium?",
    "Can you explain what a mortgage offset account is?", "Why is the sky blue?",
    "What are some good ideas for naming a spreadsheet tab?", "How do I freeze the top row in a spreadsheet?",
    "My colleague keeps interrupting in meetings, any ideas how to handle it?",
    "What's a polite way to decline a dinner invitation from my landlord?",
    "The weekend weather looks grim, is there any point cleaning the windows?",
    "I watched a documentary about octopuses last night, they're so clever.",
    "Is it worth upgrading my phone this year?", "How do I get candle wax out of a tablecloth?",
    "What's the capital of Australia? I always forget.", "Can you summarise the plot of Hamlet?",
    "My houseplant has yellow leaves, what am I doing wrong?", "How long should I boil an egg for a runny yolk?",
    "Any ideas for a team name for the pub quiz on Friday?", "What's a good way to remember people's names?",
    "Explain the offside rule like I'm five.", "Why do cats knead blankets?",
    "How do I write a polite reminder email about an unpaid invoice?",
    "What's the best way to learn touch typing?", "Can you recommend a board game for four adults?",
    "My birthday card for a coworker needs a short funny line, ideas?",
    "What does a restaurant mean by a service charge, is it a tip?",
    "How do noise-cancelling headphones work?", "Is it bad to charge my laptop overnight?",
    "Give me a quick explanation of how vaccines train the immune system.",
    "What's the etiquette for splitting a dinner bill with friends?",
    "We had a work trip to a trade fair last week, the booths were so loud.",
    "How do I stop my glasses fogging up?", "What's the story behind April Fools' Day?",
    "How should I organise my email inbox?", "What is a haiku? Can you show me one?",
    "My neighbour's music is loud on weekends, how do I bring it up nicely?",
    "How do I clean a cast iron pan?", "What's the difference between weather and climate?",
    "Can you help me word a thank-you note to my child's teacher?", "How many hours of sleep do adults need?",
    "Tell me a fun fact about the Moon.", "What's a good stretch for a stiff neck at the desk?",
    "How do airlines decide ticket prices?", "Which is better for notes, paper or an app?",
)
OPENERS = ("", "", "Random question: ", "Hey, ", "Okay, another one. ", "Something I wondered today: ",
           "Sorry if this is silly. ", "Back again! ")
# Replies to filler, and lead-ins that tuck a fact into a message about something else.
REPLIES = (
    "Good question. In short: it depends on a few things, but here is the gist.",
    "Here's a simple way to think about it, with an example.", "Sure. The short answer is yes, with a caveat.",
    "That's a common one. A couple of practical tips below.", "Happy to help. Here is what usually works.",
)
TUCKED = ("Quick one before I forget: {fact} Anyway, {filler}", "{fact} But that's not why I'm here: {filler}",
          "{filler} Oh, and context: {fact}")
NAMES = ("Alex", "Sam", "Robin", "Maya", "Jonas", "Priya", "Tomás", "Lena", "Noor", "Kai", "Ines", "Theo",
         "Ada", "Felix", "Zara", "Mateo", "Yuki", "Olu", "Hanna", "Ravi", "Elif", "Marek", "Sofia", "Luca")


def _statement(rng: random.Random, fact: Fact) -> str:
    said = rng.choice(fact.said)
    if rng.random() < 0.5:
        return said
    filler = rng.choice(FILLER)
    return rng.choice(TUCKED).format(fact=said, filler=filler[0].lower() + filler[1:])


def _sitting(rng: random.Random, name: str, number: int, facts: list[Fact]) -> tuple[list[dict], dict[str, str]]:
    """One sitting's turns (unrelated talk, with these facts tucked in) and the turn id of each fact."""
    turns: list[dict] = []
    evidence: dict[str, str] = {}

    def say(speaker: str, text: str) -> str:
        turns.append({"speaker": speaker, "dia_id": f"D{number}:{len(turns) + 1}", "text": text})
        return turns[-1]["dia_id"]

    slots = rng.randint(5, 9)
    at = {fact.topic: rng.randrange(slots) for fact in facts}
    for slot in range(slots):
        for fact in (f for f in facts if at[f.topic] == slot):
            evidence[fact.topic] = say(name, _statement(rng, fact))
            say("Assistant", fact.echo if rng.random() < 0.6 else rng.choice(REPLIES))
        say(name, rng.choice(OPENERS) + rng.choice(FILLER))
        say("Assistant", rng.choice(REPLIES))
    return turns, evidence


def make_person(rng: random.Random, number: int, *, facts: int, sittings: int) -> dict:
    """One person's conversation with the assistant and the questions about it, in LoCoMo's format."""
    name = f"{NAMES[number % len(NAMES)]}-{number}"
    chosen = rng.sample(FACTS, facts)
    # Facts are stated in the first two thirds of the sittings; every sitting has unrelated talk.
    stated_in = {fact.topic: rng.randrange(max(1, sittings * 2 // 3)) for fact in chosen}
    conversation: dict = {"speaker_a": name, "speaker_b": "Assistant"}
    evidence: dict[str, str] = {}
    start = datetime(2026, 1, 5, 9) + timedelta(days=rng.randrange(60))
    for sitting in range(1, sittings + 1):
        here = [fact for fact in chosen if stated_in[fact.topic] == sitting - 1]
        conversation[f"session_{sitting}"], found = _sitting(rng, name, sitting, here)
        evidence.update(found)
        when = start + timedelta(days=3 * sitting + rng.randrange(3), hours=rng.randrange(10))
        conversation[f"session_{sitting}_date_time"] = when.strftime("%-I:%M %p on %-d %B, %Y")
    qa = [{"question": question, "answer": fact.answer, "evidence": [evidence[fact.topic]], "category": SINGLE_HOP}
          for fact in chosen for question in rng.sample(fact.asked, min(2, len(fact.asked)))]
    return {"sample_id": f"pref-{number}", "conversation": conversation, "qa": qa}


def make_recall_set(*, people: int = 20, seed: int = 1, facts: int = 10, sittings: int = 12) -> list[dict]:
    """A LoCoMo-format list of conversations, the same for the same arguments."""
    if not 1 <= facts <= len(FACTS):
        raise ValueError(f"facts must be between 1 and {len(FACTS)}")
    rng = random.Random(seed)
    return [make_person(rng, number, facts=facts, sittings=sittings) for number in range(people)]
