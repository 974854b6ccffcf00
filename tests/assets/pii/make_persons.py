"""Writes persons.jsonl: person names in support e-mails and tickets, English and French, labelled by hand.

Written for issue 13 separately from the detector (before it was run on them): names are marked [[like
this]] below and turned into character spans. Lines without a mark are hard negatives: products, places,
companies, weekdays, job titles and capitalised words that are not people. Run from the repository root:

    python tests/assets/pii/make_persons.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

EN = [
    "Dear [[Boris]], thank you for your message about the Thermo T5.",
    "Hi [[Tobias]], your replacement hub ships tomorrow.",
    "Hello [[Margaret Okafor]], we received your return request.",
    "Thanks, [[Priya]] — I'll check the order and get back to you.",
    "Best regards,\n[[Daniel Whitfield]]\nAcme Care Team",
    "Kind regards, [[Sofia Marquez]]",
    "[[Liam O'Connor]] from our installation team will call you on Monday.",
    "I spoke to [[Hannah]] yesterday and she said the refund was approved.",
    "My neighbour [[Tom Brennan]] has the same thermostat and it works fine.",
    "Please ask for [[Ms. Chen]] when you call the warehouse.",
    "[[Mr. Adebayo]] reported error E04 twice this week.",
    "Our technician, [[Kevin Doyle]], replaced the C-wire adapter.",
    "Cheers,\n[[Jake]]",
    "Hi [[Aisha]] and [[Omar]], both accounts are now linked to the same household.",
    "Forwarding this to [[Rebecca Lindqvist]] in billing.",
    "As [[Grace]] mentioned on the phone, the Care+ plan covers the fan motor.",
    "Could [[Dr. Elena Petrova]] confirm the delivery address?",
    "The parcel was signed for by [[Marcus Reed]] at 3:40 pm.",
    "Thank you [[Wei Zhang]] for your patience!",
    "[[Samuel]], I have escalated your ticket to tier 2.",
    "Regards, [[Fatima Al-Sayed]], Facilities Manager, Northwind Offices",
    "Good morning [[Chloe]], the firmware update 4.3 fixes the schedule bug.",
    "I am writing on behalf of my mother, [[Ingrid Haugen]], who owns the device.",
    "[[Nathan Park]] and [[Olivia Park]] share the Acme Home account.",
    "Please reply to me, not to [[George]], he no longer works here.",
    "Dear Sir or Madam, the Acme Air stopped reporting CO2 values.",
    "The Thermo T3 and the Acme Hub are both out of stock in Denver.",
    "Our office in Lyon is closed on Friday for the holiday.",
    "Parcelway and SwiftLine both deliver to Canada within five days.",
    "Please restart the Hub, then open the Acme Home app and tap Devices.",
    "The Care+ subscription renews on 1 November every year.",
    "Error E11 means the Thread network split after a power cut.",
    "Support Team Lead approved the exception for order ACM-104233.",
    "Customer Success will contact Northwind about the bulk discount.",
    "We moved from Boston to Seattle and need to change the time zone.",
    "The Amazon listing shows the wrong wattage for the Acme Air.",
    "Visit Settings > Schedules > Away Mode to pause heating.",
    "Is the Thermo T5 compatible with Nest sensors or Ecobee remote sensors?",
    "Microsoft Teams keeps crashing when I join the call with your agent.",
    "The Berlin warehouse ships all orders for Germany and Austria.",
]
FR = [
    "Bonjour [[Camille]], merci pour votre message concernant le Thermo T5.",
    "Cher [[Jean-Pierre Martin]], votre remboursement a été validé.",
    "Madame [[Lefèvre]], nous avons bien reçu votre demande de retour.",
    "Cordialement,\n[[Sophie Durand]]\nService client Acme",
    "Bien à vous, [[Nicolas Bernard]]",
    "[[Amélie]] de l'équipe d'installation vous appellera lundi.",
    "J'ai parlé avec [[Thomas]] hier, il m'a dit que le colis était parti.",
    "Mon voisin [[Luc Moreau]] a le même thermostat et il fonctionne très bien.",
    "Merci de demander [[Mme Rousseau]] quand vous appelez l'entrepôt.",
    "[[M. Diallo]] a signalé l'erreur E04 deux fois cette semaine.",
    "Notre technicien, [[Julien Faure]], a remplacé l'adaptateur.",
    "Salut [[Léa]], le hub de remplacement part demain.",
    "Bonjour [[Yasmine]] et [[Karim]], les deux comptes sont liés au même foyer.",
    "Je transfère votre message à [[Claire Fontaine]] au service facturation.",
    "Comme [[Manon]] vous l'a dit au téléphone, Care+ couvre le moteur du ventilateur.",
    "Le colis a été signé par [[Antoine Girard]] à 15 h 40.",
    "Merci [[Hélène Petit]] pour votre patience !",
    "[[Mathieu]], j'ai transmis votre ticket au niveau 2.",
    "Je vous écris de la part de ma mère, [[Monique Lambert]], qui possède l'appareil.",
    "[[Pierre]] et [[Élodie Garnier]] partagent le compte Acme Home.",
    "Merci de me répondre à moi et non à [[François]], il ne travaille plus ici.",
    "Bonne journée,\n[[Inès Benali]]",
    "Madame, Monsieur, l'Acme Air n'affiche plus le taux de CO2.",
    "Le Thermo T3 et le Hub Acme sont en rupture de stock à Bordeaux.",
    "Notre bureau de Lyon sera fermé vendredi pour le jour férié.",
    "Parcelway et SwiftLine livrent en Belgique sous cinq jours.",
    "Redémarrez le Hub, puis ouvrez l'application Acme Home et touchez Appareils.",
    "L'abonnement Care+ est renouvelé le 1er novembre chaque année.",
    "L'erreur E11 signifie que le réseau Thread s'est divisé après une coupure de courant.",
    "Le responsable du support a accordé une exception pour la commande ACM-104233.",
    "Nous avons déménagé de Marseille à Lille et devons changer le fuseau horaire.",
    "Allez dans Réglages > Programmes > Mode absence pour suspendre le chauffage.",
    "Le Thermo T5 est-il compatible avec les capteurs Netatmo ?",
    "L'entrepôt de Strasbourg expédie toutes les commandes pour l'Alsace.",
]
MARK = re.compile(r"\[\[(.+?)\]\]")


def spans(marked: str) -> tuple[str, list[dict[str, object]]]:
    text, found, cursor = "", [], 0
    for match in MARK.finditer(marked):
        text += marked[cursor : match.start()]
        found.append({"type": "PERSON", "start": len(text), "end": len(text) + len(match.group(1))})
        text += match.group(1)
        cursor = match.end()
    return text + marked[cursor:], found


def main() -> None:
    rows = []
    for lang, lines in (("en", EN), ("fr", FR)):
        for number, marked in enumerate(lines, start=1):
            text, found = spans(marked)
            rows.append({"id": f"{lang}-{number:03d}", "lang": lang, "text": text, "spans": found})
    out = Path(__file__).with_name("persons.jsonl")
    out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    print(f"{out}: {len(rows)} lines, {sum(len(r['spans']) for r in rows)} names")


if __name__ == "__main__":
    main()
