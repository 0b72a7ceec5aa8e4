"""Demo project content: twelve queries with mixed text and image items, demo users, and real
sample photographs that ship inside scikit-image, scikit-learn and matplotlib (no download)."""

from __future__ import annotations

import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NamedTuple

from PIL import Image

DEMO_PROJECT: dict[str, Any] = {
    "slug": "demo",
    "name": "Demo: mixed text and image search",
    "description": (
        "Twelve web-search queries, each with text documents ranked by a BM25-like text ranker "
        "and photographs ranked by an image classifier. The two rankers' scores are on "
        "unrelated scales; the demo shows how few human judgments are needed to put them on one."
    ),
    "modalities": ["text", "image"],
    "grade_names": ["Not relevant", "Marginal", "Relevant", "Highly relevant", "Perfect"],
    # Named after Project's fields. Grading all 96 train items would cost 9.60; the budget is
    # set below that, as the anchor search needs far fewer grades.
    "page_size": 10,
    "top_band": 3,
    "grade_cost": Decimal("0.10"),
    "compare_cost": Decimal("0.05"),
    "budget": Decimal("8.00"),
    "strategy": "iso_anchor",
}

DEMO_USERS: list[dict[str, str]] = [
    {"username": "lead", "password": "pagewise-lead", "role": "lead"},
    {"username": "annotator1", "password": "pagewise-annotator1", "role": "annotator"},
    {"username": "annotator2", "password": "pagewise-annotator2", "role": "annotator"},
    {"username": "scientist", "password": "pagewise-scientist", "role": "scientist"},
]

MAX_IMAGE_SIDE = 512


# --- Images ---------------------------------------------------------------------------------
# Each loader imports its package lazily, so importing this module stays cheap.


class _DemoImage(NamedTuple):
    path: str  # relative path inside the import zip; the suffix names the encoding
    load: Callable[[], Image.Image]
    source: str
    credit: str


def _from_skimage(name: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        import numpy as np
        from skimage import data

        array = getattr(data, name)()
        if name == "stereo_motorcycle":
            array = array[0]  # (left view, right view, disparity): one photograph is enough
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        return Image.fromarray(array)

    return load


def _from_sklearn(filename: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(filename))

    return load


def _from_matplotlib(filename: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        from matplotlib import cbook

        with Image.open(cbook.get_sample_data(filename, asfileobj=False)) as image:
            image.load()
            return image.copy()

    return load


_IMAGES: dict[str, _DemoImage] = {
    "chelsea": _DemoImage(
        "images/chelsea.jpg",
        _from_skimage("chelsea"),
        "scikit-image: skimage.data.chelsea()",
        "Stefan van der Walt, CC0",
    ),
    "coffee": _DemoImage(
        "images/coffee.jpg",
        _from_skimage("coffee"),
        "scikit-image: skimage.data.coffee()",
        "Rachel Michetti (Pikolo Espresso Bar), CC0",
    ),
    "rocket": _DemoImage(
        "images/rocket.jpg",
        _from_skimage("rocket"),
        "scikit-image: skimage.data.rocket()",
        "SpaceX, public domain",
    ),
    "astronaut": _DemoImage(
        "images/astronaut.jpg",
        _from_skimage("astronaut"),
        "scikit-image: skimage.data.astronaut()",
        "NASA, public domain",
    ),
    "moon": _DemoImage(
        "images/moon.jpg",
        _from_skimage("moon"),
        "scikit-image: skimage.data.moon()",
        "scikit-image sample data",
    ),
    "hubble": _DemoImage(
        "images/hubble_deep_field.jpg",
        _from_skimage("hubble_deep_field"),
        "scikit-image: skimage.data.hubble_deep_field()",
        "NASA / HubbleSite, public domain",
    ),
    "coins": _DemoImage(
        "images/coins.jpg",
        _from_skimage("coins"),
        "scikit-image: skimage.data.coins()",
        "Brooklyn Museum, no known copyright restrictions",
    ),
    "horse": _DemoImage(
        "images/horse.png",
        _from_skimage("horse"),
        "scikit-image: skimage.data.horse()",
        "Andreas Preuss (marauder) via openclipart, CC0",
    ),
    "camera": _DemoImage(
        "images/camera.jpg",
        _from_skimage("camera"),
        "scikit-image: skimage.data.camera()",
        "Lav Varshney, CC0",
    ),
    "motorcycle": _DemoImage(
        "images/motorcycle.jpg",
        _from_skimage("stereo_motorcycle"),
        "scikit-image: skimage.data.stereo_motorcycle()",
        "Middlebury 2014 stereo dataset (Scharstein et al.)",
    ),
    "tissue": _DemoImage(
        "images/immunohistochemistry.jpg",
        _from_skimage("immunohistochemistry"),
        "scikit-image: skimage.data.immunohistochemistry()",
        "Center for Microscopy and Molecular Imaging, no known copyright restrictions",
    ),
    "retina": _DemoImage(
        "images/retina.jpg",
        _from_skimage("retina"),
        "scikit-image: skimage.data.retina()",
        "Mikael Häggström via Wikimedia Commons, CC0",
    ),
    "china": _DemoImage(
        "images/china.jpg",
        _from_sklearn("china.jpg"),
        'scikit-learn: sklearn.datasets.load_sample_image("china.jpg")',
        "danielbuechele on Flickr, CC BY 2.0",
    ),
    "flower": _DemoImage(
        "images/flower.jpg",
        _from_sklearn("flower.jpg"),
        'scikit-learn: sklearn.datasets.load_sample_image("flower.jpg")',
        "vultilion on Flickr, CC BY 2.0",
    ),
    "grace_hopper": _DemoImage(
        "images/grace_hopper.jpg",
        _from_matplotlib("grace_hopper.jpg"),
        'matplotlib: matplotlib.cbook.get_sample_data("grace_hopper.jpg")',
        "US Navy, public domain",
    ),
}


# --- Queries and items ----------------------------------------------------------------------
# `grade` is the grade a careful annotator would give (0..4); it is exported as `gold_grade` for
# gold queries only. Scores imitate real single-modal rankers: text like BM25 (about 2-25),
# images like classifier logits (about -4..6). They follow relevance only roughly: BM25 rewards
# word matches ("CAT excavator", "Edward Hopper"), so within a modality the order is good, not
# perfect. `score=None` leaves upstream_score out, for the built-in ranker to fill in.


class _Text(NamedTuple):
    id: str
    grade: int
    score: float | None
    source: str
    title: str
    text: str


class _Picture(NamedTuple):
    id: str
    grade: int
    score: float | None
    image: str  # key of _IMAGES
    title: str
    text: str = ""


class _Query(NamedTuple):
    id: str
    text: str
    split: str
    items: tuple[_Text | _Picture, ...]


_QUERIES: tuple[_Query, ...] = (
    _Query(
        "q-cat",
        "cat",
        "train",
        (
            _Text(
                "t-cat-1",
                4,
                18.4,
                "encyclopedia",
                "Cat - the domestic cat",
                "The domestic cat (Felis catus) is a small carnivorous mammal that has lived "
                "alongside people for about 10,000 years. Cats were first valued for hunting "
                "rodents and are now among the most popular pets in the world. Most house cats "
                "weigh between 3.5 and 5 kg and live 12 to 18 years.",
            ),
            _Text(
                "t-cat-2",
                3,
                14.9,
                "pet care blog",
                "How to read your cat's body language",
                "A slow blink from a cat is a sign of trust, and you can return it. Ears turned "
                "sideways or flattened mean the cat is anxious, while a tail held straight up is "
                "a friendly greeting.",
            ),
            _Text(
                "t-cat-3",
                3,
                12.1,
                "pet care blog",
                "Tabby cats: a coat pattern, not a breed",
                "Tabby is a coat pattern recognisable by the 'M' marking on the forehead and the "
                "stripes around the eyes. Classic, mackerel, spotted and ticked tabbies are all "
                "common among mixed-breed house cats.",
            ),
            _Text(
                "t-cat-4",
                0,
                9.7,
                "equipment dealer",
                "CAT excavator tracks: weekly maintenance checklist",
                "Check the track tension on your CAT excavator every week and after working in "
                "mud. A sagging track wears the sprocket and idlers early. Clean packed debris "
                "from the undercarriage before measuring.",
            ),
            _Text(
                "t-cat-5",
                1,
                6.3,
                "wildlife magazine",
                "Lion prides of the Serengeti",
                "Lions are the only big cats that live in groups. A pride is built around related "
                "females and their cubs, while males defend it for a few years before being "
                "driven out by rivals.",
            ),
            _Text(
                "t-cat-6",
                2,
                15.6,
                "pet shop",
                "Best food for senior cats: our picks",
                "Older cats need more protein and fewer calories as they slow down. We compared "
                "twelve wet and dry foods for senior cats on protein content, price and how "
                "readily our testers' cats ate them.",
            ),
            _Text(
                "t-cat-7",
                0,
                11.2,
                "Linux manual",
                "cat(1) - concatenate files and print on the standard output",
                "cat reads each file in sequence and writes it to standard output. With no file, "
                "or when the file is -, it reads standard input. Use -n to number output lines.",
            ),
            _Picture(
                "i-cat-1",
                4,
                5.1,
                "chelsea",
                "Tabby cat looking into the camera, close-up",
                "Chelsea the cat.",
            ),
            _Picture("i-cat-2", 0, -2.8, "flower", "Orange dahlia in bloom"),
            _Picture("i-cat-3", 0, -1.2, "horse", "Silhouette of a standing horse"),
        ),
    ),
    _Query(
        "q-coffee",
        "espresso coffee",
        "gold",
        (
            _Text(
                "t-coffee-1",
                4,
                21.3,
                "encyclopedia",
                "Espresso",
                "Espresso is coffee brewed by forcing hot water at about 9 bar through finely "
                "ground, tightly packed coffee. A single shot is around 30 ml and is topped by a "
                "layer of golden crema. It is the base of the cappuccino, latte and flat white.",
            ),
            _Text(
                "t-coffee-2",
                3,
                16.8,
                "coffee blog",
                "Pulling a better espresso shot at home",
                "Start with 18 g of coffee in and about 36 g of espresso out in 25 to 30 seconds. "
                "If the shot runs fast and tastes sour, grind finer; if it drips slowly and tastes "
                "bitter, grind coarser. Change one thing at a time.",
            ),
            _Text(
                "t-coffee-3",
                2,
                17.9,
                "local news",
                "New espresso bar opens on Market Street",
                "The bar serves a short menu of espresso drinks and pastries from 7 am. Its owners "
                "roast their coffee beans in small batches in the back room and plan to sell them "
                "by the bag from next month.",
            ),
            _Text(
                "t-coffee-4",
                2,
                11.4,
                "health news",
                "Coffee and your heart: what the studies say",
                "Drinking three to four cups of coffee a day is linked with a slightly lower risk "
                "of heart disease in large observational studies. Espresso holds more caffeine per "
                "millilitre than filter coffee, but less per serving.",
            ),
            _Text(
                "t-coffee-5",
                1,
                9.8,
                "recipe site",
                "Easy cold brew concentrate",
                "Steep coarsely ground coffee in cold water for 12 to 18 hours, then strain "
                "through a paper filter. Unlike espresso, cold brew uses no heat or pressure, so "
                "it tastes smoother and less acidic.",
            ),
            _Text(
                "t-coffee-6",
                0,
                3.1,
                "travel guide",
                "Tea houses of Chengdu",
                "Sichuan's capital is famous for its tea houses, where locals spend whole "
                "afternoons over jasmine tea and mahjong. Ear cleaners and shoe shiners still work "
                "the busiest ones in People's Park.",
            ),
            _Text(
                "t-coffee-7",
                0,
                8.2,
                "furniture shop",
                "How to choose a coffee table",
                "A coffee table should be about two-thirds the length of your sofa and a few "
                "centimetres lower than the seat cushions. Leave 40 to 50 cm between the table and "
                "the sofa so people can walk past.",
            ),
            _Picture(
                "i-coffee-1",
                4,
                5.6,
                "coffee",
                "Espresso in a red cup and saucer on a wooden table",
                "A freshly pulled shot with crema, served with a spoon.",
            ),
            _Picture(
                "i-coffee-2",
                0,
                -1.9,
                "tissue",
                "Stained colon tissue under a microscope",
                "Immunohistochemistry: brown DAB stain with blue hematoxylin counterstain.",
            ),
            _Picture(
                "i-coffee-3",
                0,
                -3.4,
                "china",
                "Temple tower above a lake in Beijing",
            ),
        ),
    ),
    _Query(
        "q-rocket-launch",
        "rocket launch",
        "gold",
        (
            _Text(
                "t-rocket-1",
                4,
                19.7,
                "space news",
                "Falcon 9 launches DSCOVR from Cape Canaveral",
                "A Falcon 9 rocket lifted off from Space Launch Complex 40 on 11 February 2015, "
                "carrying the Deep Space Climate Observatory. The satellite will watch the Sun and "
                "Earth from the L1 point, 1.5 million km away.",
            ),
            _Text(
                "t-rocket-2",
                3,
                17.2,
                "travel guide",
                "Where to watch a rocket launch on the Space Coast",
                "The riverbank in Titusville gives a clear view across the water to the launch "
                "pads of Cape Canaveral. Check the launch window the day before and arrive early: "
                "roads fill up, and launches are often delayed or scrubbed.",
            ),
            _Text(
                "t-rocket-3",
                3,
                12.6,
                "science explainer",
                "Why most rockets launch towards the east",
                "The Earth spins eastward, so a rocket launched east starts with up to 465 m/s of "
                "free speed at the equator. That is why launch sites sit near the coast with open "
                "ocean to their east.",
            ),
            _Text(
                "t-rocket-4",
                2,
                14.1,
                "hobby shop",
                "Model rocket starter kits",
                "Our starter kits include a rocket, a launch pad and an electric launch "
                "controller. With a small solid motor the rockets climb 100 to 300 metres and "
                "return on a parachute.",
            ),
            _Text(
                "t-rocket-5",
                0,
                7.4,
                "business blog",
                "The product launch checklist every startup needs",
                "A launch is won in the weeks before it. Line up your press list, write the "
                "announcement early and rehearse the demo until it cannot fail.",
            ),
            _Text(
                "t-rocket-6",
                0,
                6.9,
                "recipe site",
                "Rocket salad with pears and parmesan",
                "Peppery rocket (arugula) pairs well with sweet pear and shaved parmesan. Dress "
                "the leaves just before serving so they stay crisp.",
            ),
            _Text(
                "t-rocket-7",
                2,
                10.3,
                "encyclopedia",
                "Space Shuttle program",
                "NASA's Space Shuttle flew 135 missions between 1981 and 2011. It launched "
                "vertically on two solid rocket boosters and an external fuel tank, and landed "
                "on a runway like a glider.",
            ),
            _Picture(
                "i-rocket-1",
                3,
                4.8,
                "rocket",
                "Falcon 9 with DSCOVR on the launch pad at dusk, before lift-off",
                "Launch Complex 40, Cape Canaveral.",
            ),
            _Picture(
                "i-rocket-2",
                1,
                2.2,
                "astronaut",
                "Astronaut portrait with a Space Shuttle model",
            ),
            _Picture("i-rocket-3", 0, 0.4, "moon", "Grey, cratered surface of the Moon"),
            _Picture(
                "i-rocket-4",
                0,
                -0.8,
                "hubble",
                "Thousands of distant galaxies in a deep-sky image",
            ),
        ),
    ),
    _Query(
        "q-astronaut",
        "astronaut in space suit",
        "train",
        (
            _Text(
                "t-astronaut-1",
                3,
                13.5,
                "encyclopedia",
                "Eileen Collins",
                "Eileen Collins was the first woman to pilot the Space Shuttle, on STS-63 in "
                "1995, and the first to command it, on STS-93 in 1999. She flew four missions and "
                "spent more than 38 days in space before retiring in 2006.",
            ),
            _Text(
                "t-astronaut-2",
                4,
                16.2,
                "space museum",
                "The orange 'pumpkin suit' of the Shuttle era",
                "Shuttle astronauts wore the pressurised Advanced Crew Escape Suit during launch "
                "and landing. It was bright orange so that rescue crews could find an astronaut "
                "in the sea after a bail-out.",
            ),
            _Text(
                "t-astronaut-3",
                4,
                20.4,
                "science explainer",
                "How a space suit keeps an astronaut alive on a spacewalk",
                "A spacewalk suit is a small spacecraft: it supplies oxygen, removes carbon "
                "dioxide, keeps the astronaut at a comfortable temperature and shields against "
                "micrometeoroids. A fully charged suit supports about eight hours outside.",
            ),
            _Text(
                "t-astronaut-4",
                1,
                15.1,
                "costume shop",
                "Kids' astronaut space suit costume",
                "Our white astronaut costume comes with a space suit jumpsuit, mission patches and "
                "a soft helmet. Machine washable; sizes 3 to 10 years.",
            ),
            _Text(
                "t-astronaut-5",
                2,
                12.0,
                "careers site",
                "How to become an astronaut",
                "Most astronaut candidates hold a master's degree in science or engineering, or "
                "are test pilots. Selection includes medical tests, interviews and months of "
                "training before anyone is assigned to a flight.",
            ),
            _Text(
                "t-astronaut-6",
                0,
                5.8,
                "diving magazine",
                "Atmospheric diving suits, compared",
                "Hard-shell diving suits keep the diver at surface pressure, so there is no need "
                "for decompression. Divers call the newest models a space suit for the deep sea.",
            ),
            _Picture(
                "i-astronaut-1",
                4,
                5.9,
                "astronaut",
                "NASA portrait of astronaut Eileen Collins in an orange launch suit",
                "With her helmet and a Space Shuttle model.",
            ),
            _Picture(
                "i-astronaut-2",
                0,
                1.3,
                "grace_hopper",
                "Official portrait of a US Navy officer in front of a flag",
            ),
            _Picture(
                "i-astronaut-3",
                1,
                0.9,
                "rocket",
                "Falcon 9 rocket on the launch pad",
            ),
        ),
    ),
    _Query(
        "q-moon",
        "moon surface craters",
        "train",
        (
            _Text(
                "t-moon-1",
                4,
                22.6,
                "science explainer",
                "How the Moon's craters formed",
                "Almost every crater on the Moon was made by an asteroid or comet impact. With no "
                "air or weather to erase them, craters on the lunar surface last for billions of "
                "years. The largest, the South Pole-Aitken basin, is about 2,500 km across.",
            ),
            _Text(
                "t-moon-2",
                3,
                15.8,
                "encyclopedia",
                "Lunar maria",
                "The dark patches on the Moon are plains of basalt from lava floods that ended "
                "about three billion years ago. Their surface is younger than the bright "
                "highlands, so it has far fewer craters.",
            ),
            _Text(
                "t-moon-3",
                2,
                13.0,
                "photography blog",
                "Photographing the Moon with a telephoto lens",
                "Shoot a few days before or after full moon: near the line between day and night "
                "the low Sun casts long shadows that make craters stand out. Use a tripod and a "
                "fast shutter speed.",
            ),
            _Text(
                "t-moon-4",
                1,
                11.9,
                "almanac",
                "Moon phases calendar for this year",
                "Dates and times of every new moon, first quarter, full moon and last quarter "
                "this year. Moonrise and moonset times are given for your city.",
            ),
            _Text(
                "t-moon-5",
                0,
                8.8,
                "travel guide",
                "Full Moon Party survival guide",
                "The monthly beach party draws thousands of travellers. Book your room early, "
                "wear shoes on the sand and keep your phone in a waterproof bag.",
            ),
            _Text(
                "t-moon-6",
                3,
                12.2,
                "space history",
                "Tranquility Base: the Apollo 11 landing site",
                "Apollo 11 landed on the flat floor of the Sea of Tranquility, steering clear of "
                "a boulder-strewn crater in the last minutes of descent. The astronauts' "
                "footprints are still pressed into the dusty lunar surface.",
            ),
            _Text(
                "t-moon-7",
                0,
                9.5,
                "national parks guide",
                "Crater Lake National Park",
                "Crater Lake in Oregon fills the caldera left when Mount Mazama collapsed about "
                "7,700 years ago. At 594 m it is the deepest lake in the United States.",
            ),
            _Picture(
                "i-moon-1",
                4,
                4.2,
                "moon",
                "The lunar surface with small craters, in grey tones",
            ),
            _Picture(
                "i-moon-2",
                0,
                0.7,
                "coins",
                "Rows of ancient coins on a grey background",
            ),
            _Picture(
                "i-moon-3",
                1,
                -0.3,
                "hubble",
                "Hubble deep-field image of distant galaxies",
            ),
        ),
    ),
    _Query(
        "q-dahlia",
        "dahlia flowers",
        "train",
        (
            _Text(
                "t-dahlia-1",
                4,
                19.3,
                "gardening guide",
                "Growing dahlias from tubers",
                "Plant dahlia tubers after the last frost, 10 to 15 cm deep in full sun. Stake tall "
                "varieties when you plant them, and in cold climates lift the tubers after the "
                "first autumn frost to store them indoors.",
            ),
            _Text(
                "t-dahlia-2",
                4,
                17.0,
                "gardening guide",
                "Dahlia flower forms: pompon, cactus and decorative",
                "Dahlias are grouped by the shape of their flowers. Pompon dahlias have small, "
                "ball-shaped blooms, cactus dahlias have rolled, spiky petals, and decorative "
                "dahlias have broad, flat petals.",
            ),
            _Text(
                "t-dahlia-3",
                2,
                9.1,
                "florist blog",
                "Cut flowers that last longest in a vase",
                "Chrysanthemums and alstroemeria can last two weeks in a vase. Dahlia flowers are "
                "short-lived by comparison, three to five days, but cutting them early in the "
                "morning helps.",
            ),
            _Text(
                "t-dahlia-4",
                0,
                12.8,
                "true crime podcast",
                "The Black Dahlia: an unsolved case",
                "In 1947 the murder of Elizabeth Short, nicknamed the Black Dahlia by the press, "
                "became one of Los Angeles' most famous unsolved cases. This episode looks at the "
                "suspects.",
            ),
            _Text(
                "t-dahlia-5",
                2,
                8.0,
                "wildlife charity",
                "Plants for a pollinator-friendly garden",
                "Bees need to reach the centre of a flower. Single-flowered dahlias, with one ring "
                "of petals, are a favourite in late summer, while the double forms are of little "
                "use to them.",
            ),
            _Text(
                "t-dahlia-6",
                1,
                10.7,
                "florist shop",
                "Same-day flowers delivery",
                "Order by 2 pm for delivery today. Roses, lilies and seasonal bouquets, "
                "hand-tied by our florists and delivered in a gift box.",
            ),
            _Picture(
                "i-dahlia-1",
                4,
                5.4,
                "flower",
                "Orange dahlia in bloom against dark green leaves",
            ),
            _Picture(
                "i-dahlia-2",
                0,
                -1.0,
                "china",
                "Pagoda-like tower among trees above a lake",
            ),
            _Picture(
                "i-dahlia-3",
                0,
                -2.1,
                "retina",
                "Photograph of the back of a human eye",
                "Fundus photograph of a normal left eye.",
            ),
        ),
    ),
    _Query(
        "q-temple",
        "chinese temple pagoda",
        "train",
        (
            _Text(
                "t-temple-1",
                4,
                18.8,
                "travel guide",
                "Summer Palace, Beijing: the Tower of Buddhist Incense",
                "Rising above Kunming Lake on Longevity Hill, the octagonal Tower of Buddhist "
                "Incense is the centrepiece of the Summer Palace. The tower that stands today was "
                "rebuilt in the 1890s after the original was burned in 1860.",
            ),
            _Text(
                "t-temple-2",
                3,
                15.4,
                "encyclopedia",
                "Pagoda",
                "The pagoda grew out of the Indian stupa, a mound built over relics of the "
                "Buddha. Chinese pagodas are usually square or octagonal towers of stacked "
                "storeys, often at a Buddhist temple.",
            ),
            _Text(
                "t-temple-3",
                3,
                13.7,
                "travel guide",
                "Temple of Heaven: opening hours and tickets",
                "The Temple of Heaven park opens at 6 am; the halls open later. Buy the combined "
                "ticket to enter the round Hall of Prayer for Good Harvests, the temple's "
                "best-known building.",
            ),
            _Text(
                "t-temple-4",
                0,
                11.9,
                "restaurant listing",
                "Golden Pagoda Chinese Restaurant - menu",
                "Cantonese dishes, dim sum at weekends and a set dinner for two. Takeaway and "
                "delivery available until 10 pm.",
            ),
            _Text(
                "t-temple-5",
                1,
                9.0,
                "travel blog",
                "Shinto shrines and Buddhist temples in Japan: how to tell them apart",
                "Shrines have a torii gate at the entrance; temples usually have a gate with "
                "guardian statues and often a pagoda. Many Japanese visit both.",
            ),
            _Text(
                "t-temple-6",
                0,
                5.1,
                "gaming site",
                "Temple Run: ten tips for a higher score",
                "Tilt early rather than late and save your power-ups for the long stretches. "
                "Always go for the coins on the inside of a turn.",
            ),
            _Text(
                "t-temple-7",
                2,
                None,
                "travel guide",
                "Visiting the Forbidden City",
                "The palace of the Ming and Qing emperors has almost a thousand buildings. Book "
                "tickets online a week ahead; the museum is closed on Mondays.",
            ),
            _Picture(
                "i-temple-1",
                4,
                4.6,
                "china",
                "Tower of Buddhist Incense above Kunming Lake, Summer Palace, Beijing",
            ),
            _Picture(
                "i-temple-2",
                0,
                -2.4,
                "coins",
                "Ancient Greek coins on a grey background",
            ),
            _Picture(
                "i-temple-3",
                0,
                -3.1,
                "camera",
                "Photographer with a camera on a tripod",
            ),
        ),
    ),
    _Query(
        "q-grace-hopper",
        "grace hopper",
        "train",
        (
            _Text(
                "t-hopper-1",
                4,
                24.1,
                "encyclopedia",
                "Grace Hopper (1906-1992)",
                "Rear Admiral Grace Hopper was an American computer scientist and US Navy officer. "
                "She programmed the Harvard Mark I, wrote one of the first compilers, A-0, and "
                "shaped the design of COBOL.",
            ),
            _Text(
                "t-hopper-2",
                3,
                13.2,
                "computing history",
                "The first actual case of bug being found",
                "In 1947 operators of the Harvard Mark II found a moth trapped in a relay and taped "
                "it into the log book. Grace Hopper, who was on the team, loved to tell the story, "
                "although engineers had called faults bugs long before.",
            ),
            _Text(
                "t-hopper-3",
                2,
                19.8,
                "conference site",
                "Grace Hopper Celebration of Women in Computing",
                "The Grace Hopper Celebration is a yearly conference for women technologists. "
                "Registration opens in spring for talks, workshops and a large career fair.",
            ),
            _Text(
                "t-hopper-4",
                3,
                8.6,
                "computing history",
                "A nanosecond of wire",
                "Hopper liked to hand out pieces of wire about 30 cm long: the distance light "
                "travels in one nanosecond. She used them to explain why satellite links were slow "
                "and why computers had to be small.",
            ),
            _Text(
                "t-hopper-5",
                0,
                7.7,
                "farm supply",
                "Hopper bins for grain storage",
                "Our galvanised hopper-bottom bins empty completely by gravity. Capacities from "
                "10 to 120 tonnes, with optional aeration fans.",
            ),
            _Text(
                "t-hopper-6",
                0,
                10.1,
                "art museum",
                "Edward Hopper: Nighthawks",
                "Painted in 1942, Nighthawks shows a late-night diner seen through a wide glass "
                "window. Hopper's empty streets and harsh light have become an image of urban "
                "loneliness.",
            ),
            _Text(
                "t-hopper-7",
                2,
                6.2,
                "tech news",
                "COBOL still runs the banks",
                "Billions of lines of COBOL, the business language whose design drew on Grace "
                "Hopper's FLOW-MATIC, still process payments every day. Finding programmers who "
                "know it is getting harder.",
            ),
            _Picture(
                "i-hopper-1",
                4,
                3.9,
                "grace_hopper",
                "Portrait of Rear Admiral Grace Hopper in US Navy uniform",
            ),
            _Picture(
                "i-hopper-2",
                0,
                1.6,
                "astronaut",
                "NASA portrait of astronaut Eileen Collins",
            ),
            _Picture(
                "i-hopper-3",
                0,
                -1.8,
                "camera",
                "Photographer with a film camera on a tripod",
            ),
        ),
    ),
    _Query(
        "q-coins",
        "ancient greek coins",
        "train",
        (
            _Text(
                "t-coins-1",
                4,
                21.0,
                "encyclopedia",
                "Coinage of ancient Greece",
                "The first coins were struck around 600 BC in Lydia and the Greek cities of Ionia, "
                "from electrum, a natural alloy of gold and silver. Athenian silver tetradrachms "
                "with the owl of Athena later circulated across the Mediterranean.",
            ),
            _Text(
                "t-coins-2",
                3,
                14.4,
                "archaeology news",
                "Coins from Pompeii",
                "Excavations at Pompeii have recovered thousands of coins. Most are Roman bronze "
                "and silver, but older Greek coins from the cities of southern Italy, such as "
                "Neapolis, turn up as well.",
            ),
            _Text(
                "t-coins-3",
                3,
                11.3,
                "collectors' forum",
                "How to spot a fake ancient coin",
                "Cast copies often show tiny pits and a seam along the edge, and their weight is "
                "off. Compare against a reference catalogue before buying ancient Greek coins "
                "from an unknown seller.",
            ),
            _Text(
                "t-coins-4",
                2,
                12.5,
                "collectors' shop",
                "Storing your coin collection",
                "Keep coins in acid-free holders, away from PVC, which leaves a green film. Hold "
                "coins by the edge and never clean them: cleaning destroys their value.",
            ),
            _Text(
                "t-coins-5",
                0,
                8.1,
                "recipe site",
                "Five Greek yogurt breakfast bowls",
                "Thick Greek yogurt with honey and walnuts is a classic. Try it with figs, "
                "granola or stewed apricots for a quick breakfast.",
            ),
            _Text(
                "t-coins-6",
                1,
                10.2,
                "encyclopedia",
                "Theatre of ancient Greece",
                "Greek drama grew out of festivals for Dionysus in Athens. Plays were staged in "
                "open-air theatres cut into hillsides, such as the theatre at Epidaurus.",
            ),
            _Text(
                "t-coins-7",
                3,
                None,
                "museum",
                "Exhibition: money in the ancient Mediterranean",
                "From Lydian electrum to Roman denarii, the exhibition shows how coins spread "
                "around the Mediterranean. Highlights include a hoard of Greek silver found in "
                "Sicily.",
            ),
            _Picture(
                "i-coins-1",
                4,
                3.7,
                "coins",
                "Greek coins from Pompeii, Brooklyn Museum collection",
            ),
            _Picture("i-coins-2", 0, -0.2, "moon", "Close view of the Moon's surface"),
            _Picture(
                "i-coins-3",
                0,
                -2.9,
                "coffee",
                "Espresso cup and saucer on a wooden table",
            ),
        ),
    ),
    _Query(
        "q-horse",
        "horse",
        "train",
        (
            _Text(
                "t-horse-1",
                4,
                20.7,
                "encyclopedia",
                "Horse",
                "The horse is a large, hoofed mammal domesticated about 6,000 years ago on the "
                "steppes of Eurasia. Horses have been used for transport, farm work, war and sport, "
                "and today there are more than 300 breeds.",
            ),
            _Text(
                "t-horse-2",
                3,
                13.9,
                "equestrian magazine",
                "Looking after your horse's hooves",
                "Pick out your horse's hooves every day and check for stones and thrush. Most "
                "horses need a farrier every six to eight weeks, whether they are shod or not.",
            ),
            _Text(
                "t-horse-3",
                4,
                12.8,
                "equestrian magazine",
                "Horse breeds: from Arabian to Shire",
                "The Arabian is prized for endurance, the Thoroughbred for speed on the "
                "racecourse, and the Shire for its size and strength. A grown Shire horse can "
                "weigh over a tonne.",
            ),
            _Text(
                "t-horse-4",
                0,
                11.0,
                "sports site",
                "Pommel horse: scoring explained",
                "On the pommel horse, gymnasts are judged on continuous circles and scissors "
                "with the legs apart. Any pause or touch of the horse with the legs costs points.",
            ),
            _Text(
                "t-horse-5",
                0,
                7.3,
                "railway history",
                "The Iron Horse: steam across the American West",
                "When the first transcontinental railroad was finished in 1869, the 'iron horse' "
                "cut the journey from coast to coast from months to about a week. Towns grew up "
                "wherever the locomotives stopped for water.",
            ),
            _Text(
                "t-horse-6",
                2,
                9.9,
                "riding school",
                "Riding lessons for adult beginners",
                "Our calm school horses are ideal for adults starting out. Lessons last 45 "
                "minutes and helmets are provided.",
            ),
            _Picture(
                "i-horse-1",
                3,
                3.4,
                "horse",
                "Black silhouette of a standing horse",
                "Clip art, not a photograph.",
            ),
            _Picture(
                "i-horse-2",
                0,
                -0.9,
                "motorcycle",
                "Red motorcycle parked in a workshop",
            ),
            _Picture("i-horse-3", 0, -0.5, "chelsea", "Close-up of a tabby cat"),
        ),
    ),
    _Query(
        "q-photographer",
        "photographer with camera on tripod",
        "train",
        (
            _Text(
                "t-photographer-1",
                4,
                19.6,
                "photography blog",
                "Choosing a tripod for landscape photography",
                "A photographer who shoots at dawn needs a tripod that is steady in the wind and "
                "light enough to carry. Carbon fibre legs and a ball head suit most cameras up to "
                "a mid-size telephoto lens.",
            ),
            _Text(
                "t-photographer-2",
                2,
                12.4,
                "photography magazine",
                "Interview: a street photographer's day",
                "She carries one small camera and no tripod, and walks the same few blocks every "
                "morning. The best pictures, she says, come from waiting in one place.",
            ),
            _Text(
                "t-photographer-3",
                3,
                15.0,
                "photography blog",
                "Long exposure photography: the basics",
                "Put the camera on a tripod, switch off image stabilisation and use a remote "
                "release or the self-timer. A neutral density filter lets you keep the shutter "
                "open for seconds even in daylight.",
            ),
            _Text(
                "t-photographer-4",
                0,
                10.9,
                "home security shop",
                "Installing a home security camera",
                "Mount the camera 2.5 to 3 metres high, out of reach, and angle it down across "
                "the entrance. Check that your Wi-Fi reaches the spot first.",
            ),
            _Text(
                "t-photographer-5",
                3,
                8.3,
                "museum",
                "The view camera and the photographer under the cloth",
                "Large-format view cameras sat on heavy wooden tripods, and the photographer "
                "focused on a ground glass under a dark cloth. Many landscape photographers still "
                "use them for their detail.",
            ),
            _Text(
                "t-photographer-6",
                1,
                9.2,
                "astronomy shop",
                "Tripods and mounts for small telescopes",
                "An alt-azimuth mount on a sturdy tripod is the easiest start. Some tripods take "
                "a camera as well, for photographing the Moon through the eyepiece.",
            ),
            _Picture(
                "i-photographer-1",
                4,
                5.0,
                "camera",
                "Man taking a picture with a camera on a tripod, black and white",
            ),
            _Picture(
                "i-photographer-2",
                0,
                -2.2,
                "grace_hopper",
                "Portrait of Grace Hopper in Navy uniform",
            ),
            _Picture(
                "i-photographer-3",
                0,
                -1.5,
                "astronaut",
                "Astronaut portrait in an orange suit",
            ),
            _Picture(
                "i-photographer-4",
                0,
                -3.0,
                "motorcycle",
                "Red motorcycle in a workshop",
            ),
        ),
    ),
    _Query(
        "q-galaxies",
        "hubble deep field galaxies",
        "train",
        (
            _Text(
                "t-galaxies-1",
                4,
                23.4,
                "space agency",
                "The Hubble eXtreme Deep Field",
                "Released in 2012, the eXtreme Deep Field combines ten years of Hubble exposures "
                "of one small patch of sky in the constellation Fornax. It shows about 5,500 "
                "galaxies, the faintest seen as they were over 13 billion years ago.",
            ),
            _Text(
                "t-galaxies-2",
                4,
                21.1,
                "encyclopedia",
                "Hubble Deep Field (1995)",
                "In December 1995 the Hubble Space Telescope stared for ten days at a seemingly "
                "empty speck of sky in Ursa Major. The image revealed about 3,000 galaxies and "
                "changed how astronomers counted the universe.",
            ),
            _Text(
                "t-galaxies-3",
                2,
                16.3,
                "science explainer",
                "The Hubble sequence of galaxies",
                "Edwin Hubble sorted galaxies by shape into ellipticals, spirals and barred "
                "spirals, drawn as a tuning fork. The scheme is still used, though it says little "
                "about how galaxies evolve.",
            ),
            _Text(
                "t-galaxies-4",
                3,
                11.6,
                "space news",
                "Webb's first deep field",
                "In July 2022 the James Webb Space Telescope released its first deep field, "
                "centred on the galaxy cluster SMACS 0723. Thousands of galaxies appear in the "
                "infrared image, some bent into arcs by the cluster's gravity.",
            ),
            _Text(
                "t-galaxies-5",
                1,
                12.0,
                "space agency",
                "Hubble servicing missions",
                "Astronauts visited the Hubble Space Telescope five times between 1993 and 2009 "
                "to repair it and install new instruments. The first mission fitted optics that "
                "corrected its blurred mirror.",
            ),
            _Text(
                "t-galaxies-6",
                1,
                7.1,
                "photography blog",
                "Milky Way photography in dark-sky parks",
                "Away from city light, the core of our galaxy is visible to the naked eye in "
                "summer. Use a wide lens at its widest aperture and 15 to 20 seconds of exposure.",
            ),
            _Picture(
                "i-galaxies-1",
                4,
                5.7,
                "hubble",
                "Hubble eXtreme Deep Field: thousands of distant galaxies",
            ),
            _Picture("i-galaxies-2", 1, 1.1, "moon", "Surface of the Moon"),
            _Picture(
                "i-galaxies-3",
                0,
                None,
                "retina",
                "Fundus photograph of a human retina",
            ),
        ),
    ),
)


def _record(query: _Query, item: _Text | _Picture) -> dict[str, Any]:
    record: dict[str, Any] = {"type": "item", "id": item.id, "query": query.id}
    if isinstance(item, _Picture):
        image = _IMAGES[item.image]
        record |= {"modality": "image", "image": image.path, "title": item.title}
        if item.text:
            record["text"] = item.text
        metadata = {"source": image.source, "credit": image.credit}
    else:
        record |= {"modality": "text", "title": item.title, "text": item.text}
        metadata = {"source": item.source}
    if item.score is not None:
        record["upstream_score"] = item.score
    if query.split == "gold":
        record["gold_grade"] = item.grade
    record["metadata"] = metadata
    return record


def demo_records() -> list[dict[str, Any]]:
    """The demo's queries and items as import records (JSONL lines), each query before its items."""
    records: list[dict[str, Any]] = []
    for query in _QUERIES:
        records.append({"type": "query", "id": query.id, "text": query.text, "split": query.split})
        records.extend(_record(query, item) for item in query.items)
    return records


def _encode(image: Image.Image, path: str) -> bytes:
    image = image.copy()
    image.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if path.endswith(".png"):
        image.save(buffer, format="PNG", optimize=True)
    else:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(buffer, format="JPEG", quality=85, optimize=True)
    return buffer.getvalue()


def demo_images() -> dict[str, bytes]:
    """Encoded bytes of every image the demo records refer to, keyed by their relative path.

    The images are real sample photographs bundled with installed packages, so this works offline.
    """
    used = {item.image for query in _QUERIES for item in query.items if isinstance(item, _Picture)}
    return {
        _IMAGES[key].path: _encode(_IMAGES[key].load(), _IMAGES[key].path) for key in sorted(used)
    }
